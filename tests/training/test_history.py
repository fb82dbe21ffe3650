"""epoch_rows folds CSVLogger's per-call rows into one row per epoch."""

from __future__ import annotations

from pathlib import Path

from aidetector.training.history import epoch_rows


def test_train_and_val_rows_of_an_epoch_become_one_and_other_metrics_are_dropped(
    tmp_path: Path,
) -> None:
    metrics = tmp_path / "metrics.csv"
    metrics.write_text(
        "epoch,lr-AdamW,step,test/acc,train/loss,val/acc,val/loss\n"
        "0,0.001,3,,,0.6,0.7\n"
        "0,,3,,0.9,,\n"
        "1,0.002,7,,,0.8,0.5\n"
        "1,,7,,0.6,,\n"
        "2,,7,0.75,,,\n"
    )
    assert epoch_rows(metrics) == [
        {"epoch": 0.0, "val/acc": 0.6, "val/loss": 0.7, "train/loss": 0.9},
        {"epoch": 1.0, "val/acc": 0.8, "val/loss": 0.5, "train/loss": 0.6},
    ]
    assert epoch_rows(tmp_path / "missing.csv") == []
