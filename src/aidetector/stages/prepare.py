"""DVC stage `prepare`: validate, deduplicate and split the image folder; write the cache."""

from __future__ import annotations

import json
import sys

from aidetector.config.schema import RunConfig
from aidetector.data.ingest import ingest_image_folder
from aidetector.data.prepared import write_prepared
from aidetector.data.splits import SplitRatios
from aidetector.stages.runner import run_stage

REPORTED = (
    "split_counts",
    "skipped_total",
    "duplicates",
    "cross_split_duplicates",
    "data_hash",
    "extra",
)


def run(cfg: RunConfig) -> None:
    """Validate, deduplicate and split the image folder; write the decoded cache."""
    dataset = ingest_image_folder(
        cfg.data.root,
        image_size=cfg.data.array_size,
        ratios=SplitRatios(**cfg.data.split.model_dump()),
        seed=cfg.data.seed,
        classes=cfg.data.classes,
        max_file_bytes=cfg.data.max_file_bytes,
        extra_roots=cfg.data.extra_roots,
        mode=cfg.data.preprocessing_mode,
    )
    out_dir = cfg.paths.prepared
    write_prepared(dataset, out_dir)
    report = json.loads((out_dir / "report.json").read_text())
    print(json.dumps({key: report[key] for key in REPORTED if key in report}, indent=2))


def main() -> int:
    return run_stage("prepare", run)


if __name__ == "__main__":
    sys.exit(main())
