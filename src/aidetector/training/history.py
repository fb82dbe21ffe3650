"""Per-epoch training history for `dvc plots`, from Lightning's CSVLogger.

CSVLogger writes one row per logging call, so an epoch's train metrics and its validation
metrics land on separate rows (each with the epoch number); this folds them into one row per
epoch and keeps only the train/ and val/ metrics.
"""

from __future__ import annotations

import csv
from pathlib import Path

STAGE_PREFIXES = ("train/", "val/")


def epoch_rows(metrics_csv: Path) -> list[dict[str, float]]:
    """Return one {epoch, train/..., val/...} row per epoch of a CSVLogger metrics.csv."""
    if not metrics_csv.is_file():
        return []
    by_epoch: dict[float, dict[str, float]] = {}
    with metrics_csv.open(newline="") as handle:
        for record in csv.DictReader(handle):
            values = {
                key: float(value)
                for key, value in record.items()
                if key.startswith(STAGE_PREFIXES) and value not in ("", None)
            }
            if values and record.get("epoch"):
                by_epoch.setdefault(float(record["epoch"]), {}).update(values)
    return [{"epoch": epoch, **by_epoch[epoch]} for epoch in sorted(by_epoch)]
