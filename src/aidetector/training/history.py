"""A callback that records epoch-level metrics for training-curve plots."""

from __future__ import annotations

import lightning.pytorch as pl


class EpochHistory(pl.Callback):
    """Collects one row of train/val metrics per finished epoch.

    Rows are taken when the next epoch starts (and when fit ends) because callbacks'
    on_train_epoch_end runs before the module has logged its epoch-level train metrics.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def _record(self, trainer: pl.Trainer) -> None:
        row = {
            key: float(value)
            for key, value in trainer.callback_metrics.items()
            if key.startswith(("train/", "val/"))
        }
        finished_epoch = trainer.current_epoch - 1
        seen = {r["epoch"] for r in self.rows}
        if row and finished_epoch >= 0 and finished_epoch not in seen:
            self.rows.append({"epoch": float(finished_epoch), **row})

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer)
