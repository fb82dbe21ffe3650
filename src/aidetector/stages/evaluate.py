"""DVC stage `evaluate@NAME`: score a trained model on the evaluation suite."""

from __future__ import annotations

import json
import sys

from aidetector.config.schema import RunConfig
from aidetector.evaluation.evaluate import evaluate_from_config, write_evaluation_outputs
from aidetector.stages.runner import run_stage


def run(cfg: RunConfig, names: list[str]) -> None:
    """Evaluate each named model (all when names is empty): FP32 and FP16, calibration."""
    for name in names or list(cfg.model):
        cfg.model_spec(name)  # an unknown name fails before anything loads
        result = evaluate_from_config(cfg, name)
        out_dir = write_evaluation_outputs(result, cfg, name)
        print(f"{name}: {json.dumps(result.metrics, sort_keys=True)} -> {out_dir}")


def main(argv: list[str] | None = None) -> int:
    """`python -m aidetector.stages.evaluate [NAME]`."""
    names = sys.argv[1:2] if argv is None else argv
    return run_stage("evaluate", lambda cfg: run(cfg, names))


if __name__ == "__main__":
    sys.exit(main())
