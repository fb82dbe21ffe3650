"""DVC stage `demo_data`: generate the synthetic demo dataset (used only when data=demo)."""

from __future__ import annotations

import sys

from aidetector.config.schema import RunConfig
from aidetector.data.demo import generate_demo_dataset
from aidetector.stages.runner import run_stage


def run(cfg: RunConfig) -> None:
    """Generate the synthetic demo dataset."""
    demo = cfg.demo
    generate_demo_dataset(demo.root, demo.n_per_class, demo.image_size, demo.seed)
    print(f"wrote {2 * demo.n_per_class} demo images to {demo.root}")


def main() -> int:
    return run_stage("demo-data", run)


if __name__ == "__main__":
    sys.exit(main())
