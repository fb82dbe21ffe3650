"""Knowledge distillation: a trained model (the teacher) whose softened outputs a student
learns from besides the labels (Hinton et al. 2015).

A ViT trained from scratch on a few thousand images does not learn in a few epochs: it lacks
a CNN's locality bias. Distilling from the CNN that the pipeline trains first hands it that
bias through the targets (docs/modelling.md: "A ViT that learns without pretrained weights").
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from aidetector.config.schema import DistillConfig
from aidetector.errors import AidetectorError
from aidetector.labels import ClassOrder
from aidetector.models.artifact import load_model_dir
from aidetector.preprocessing import Preprocessing


class Teacher(nn.Module):
    """A trained model whose softened outputs a student also learns from (Hinton et al. 2015).

    Frozen and always in eval mode. column_order maps the student's label order onto the
    teacher's logits, so a teacher trained with the other class order still teaches right.
    """

    def __init__(
        self,
        network: nn.Module,
        preprocessing: Preprocessing,
        column_order: list[int],
        weight: float,
        temperature: float,
    ) -> None:
        super().__init__()
        self.network = network.eval().requires_grad_(False)
        self.preprocessing = preprocessing
        self.column_order = column_order
        self.weight = weight
        self.temperature = temperature

    def train(self, mode: bool = True) -> Teacher:
        # Lightning puts every submodule in train mode; the teacher's BatchNorm must not move.
        super().train(False)
        return self

    def distillation_loss(self, images: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
        """Return T² · KL(teacher ‖ student) on temperature-softened outputs of a uint8 batch."""
        with torch.no_grad():
            teacher_logits = self.network(self.preprocessing(images)).float()
        soft_targets = (teacher_logits[:, self.column_order] / self.temperature).softmax(dim=1)
        log_probs = (student_logits.float() / self.temperature).log_softmax(dim=1)
        kl = nn.functional.kl_div(log_probs, soft_targets, reduction="batchmean")
        return kl * self.temperature**2


def load_teacher(
    settings: DistillConfig, models_dir: Path, class_order: ClassOrder
) -> tuple[Teacher, dict[str, str]]:
    """Return the teacher from models_dir/<teacher> and what identifies it (for MLflow)."""
    teacher_dir = models_dir / settings.teacher
    if not (teacher_dir / "config.yaml").is_file():
        raise AidetectorError(
            f"the teacher {settings.teacher!r} has no model directory at {teacher_dir}: train "
            f"it first (dvc repro runs train@{settings.teacher} before this stage)"
        )
    loaded = load_model_dir(teacher_dir, dtype=torch.float32)
    teacher_names = loaded.class_order.names
    column_order = [teacher_names.index(name) for name in class_order.names]
    teacher = Teacher(
        loaded.network,
        loaded.preprocessing,
        column_order,
        settings.weight,
        settings.temperature,
    )
    identity = {
        "distill.teacher": settings.teacher,
        "distill.teacher_weights_sha256": str(loaded.config.get("weights_sha256", "")),
        "distill.teacher_mlflow_run_id": str(loaded.config.get("mlflow_run_id") or ""),
    }
    return teacher, identity
