"""DVC stage `train@NAME`: train a configured model and export it to models/<name>."""

from __future__ import annotations

import json
import sys

from aidetector.config.schema import RunConfig
from aidetector.stages.runner import run_stage
from aidetector.training.outputs import write_training_outputs
from aidetector.training.train import train


def run(cfg: RunConfig, names: list[str]) -> None:
    """Train each named model (all configured ones when names is empty) and export it."""
    for name in names or list(cfg.model):
        result = train(cfg, name)
        if result.is_global_zero:
            model_dir = write_training_outputs(result, cfg)
            print(f"{name}: {json.dumps(result.metrics, sort_keys=True)} -> {model_dir}")


def main(argv: list[str] | None = None) -> int:
    """`python -m aidetector.stages.train [NAME]`."""
    names = sys.argv[1:2] if argv is None else argv
    return run_stage("train", lambda cfg: run(cfg, names))


if __name__ == "__main__":
    sys.exit(main())
