"""LightningModule: preprocessing + network, cross-entropy loss, namespaced metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import lightning.pytorch as pl
import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    MulticlassF1Score,
)

from aidetector.errors import AidetectorError
from aidetector.labels import ClassOrder
from aidetector.preprocessing import Preprocessing
from aidetector.training.distill import Teacher

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


def class_balanced_weights(labels: torch.Tensor, num_classes: int = 2) -> torch.Tensor:
    """Return inverse-frequency class weights (mean 1) for an imbalanced label set."""
    counts = torch.bincount(labels, minlength=num_classes).float().clamp(min=1)
    return counts.sum() / (num_classes * counts)


class DetectorModule(pl.LightningModule):
    """Binary REAL/FAKE classifier; takes uint8 NCHW batches and normalises them itself.

    class_order is the prepared data's label order: it says which logit is P(FAKE).
    """

    def __init__(
        self,
        net: nn.Module,
        preprocessing: Preprocessing,
        class_order: ClassOrder,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        class_weights: torch.Tensor | None = None,
        class_weighted_loss: bool = False,
        label_smoothing: float = 0.0,
        teacher: Teacher | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        # NHWC activations: what cuDNN's tensor-core convolutions want under 16-mixed.
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net = net
        self.preprocessing = preprocessing
        self.class_order = class_order
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        weights = class_weights if class_weighted_loss else None
        self.loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=label_smoothing)
        # Not a submodule: its weights stay out of the checkpoints and out of Lightning's
        # train/eval switching (it would count 94 modules "in eval mode"); moved in on_fit_start.
        self._teachers = [teacher] if teacher is not None else []
        metrics = MetricCollection(
            {
                "acc": BinaryAccuracy(),
                "auc": BinaryAUROC(),
                "f1": MulticlassF1Score(num_classes=2, average=None),
            }
        )
        # Keys are suffixed: nn.Module already has a `train` attribute.
        self.stage_metrics = nn.ModuleDict(
            {
                f"{stage}_metrics": metrics.clone(prefix=f"{stage}/")
                for stage in ("train", "val", "test")
            }
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return logits for a uint8 (N, 3, H, W) batch."""
        inputs = self.preprocessing(images).contiguous(memory_format=self.memory_format)
        logits: torch.Tensor = self.net(inputs)
        return logits

    def _metrics(self, stage: str) -> MetricCollection:
        # ModuleDict's items are typed as plain Modules; stage_metrics holds MetricCollections.
        return cast(MetricCollection, self.stage_metrics[f"{stage}_metrics"])

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss: torch.Tensor = self.loss_fn(logits, labels)
        if self._teachers and stage == "train":
            teacher = self._teachers[0]
            distill = teacher.distillation_loss(images, logits)
            loss = (1.0 - teacher.weight) * loss + teacher.weight * distill
            self.log("train/distill_loss", distill, on_step=False, on_epoch=True)
        prob_fake = logits.float().softmax(dim=1)[:, self.class_order.fake_index]
        is_fake = (labels == self.class_order.fake_index).long()
        collection = self._metrics(stage)
        collection["acc"].update(prob_fake, is_fake)
        collection["auc"].update(prob_fake, is_fake)
        collection["f1"].update(logits, labels)
        self.log(
            f"{stage}/loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(labels),
            sync_dist=stage != "train",
        )
        return loss

    def _log_epoch(self, stage: str) -> None:
        collection = self._metrics(stage)
        values = collection.compute()
        f1 = values.pop(f"{stage}/f1")
        for index, name in enumerate(self.class_order.names):
            values[f"{stage}/f1_{name.lower()}"] = f1[index]
        self.log_dict(values, prog_bar=stage != "train")
        collection.reset()

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def on_fit_start(self) -> None:
        self.net.to(memory_format=self.memory_format)
        for teacher in self._teachers:
            teacher.to(self.device)

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            # Two batches run only to catch a crash before training; the split is stored in
            # class order, so their AUROC would be one class's and torchmetrics warns.
            self._metrics("val").reset()
            return
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse to resume a schedule built for a different number of optimizer steps."""
        stored = [state.get("total_steps") for state in checkpoint.get("lr_schedulers", [])]
        expected = int(self.trainer.estimated_stepping_batches)
        if stored and stored[0] is not None and stored[0] != expected:
            raise AidetectorError(
                f"the checkpoint's learning-rate schedule was built for {stored[0]} steps but "
                f"this run has {expected}: resume with the same trainer.max_epochs and data, "
                f"or start afresh with callbacks.resume=false"
            )

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, total_steps=total_steps)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
