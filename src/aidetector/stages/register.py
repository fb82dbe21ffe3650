"""DVC stage `register`: FP32 and FP16 registry versions of every trained model."""

from __future__ import annotations

import sys

from aidetector.config.schema import RunConfig
from aidetector.registry.register import register_models
from aidetector.stages.runner import run_stage


def run(cfg: RunConfig) -> None:
    """Register every trained model as FP32 and FP16 versions in the MLflow Model Registry."""
    for version in register_models(cfg):
        state = "registered" if version.created else "already registered, evidence refreshed"
        print(f"{version.readable_name}: version {version.version} ({state})")
    print(f"wrote {cfg.registry.report}")


def main() -> int:
    return run_stage("register", run)


if __name__ == "__main__":
    sys.exit(main())
