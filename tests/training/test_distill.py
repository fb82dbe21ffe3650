"""Distillation: the teacher's softened outputs, in the student's label order."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from aidetector.config.schema import DistillConfig
from aidetector.errors import AidetectorError
from aidetector.labels import ClassOrder
from aidetector.preprocessing import Preprocessing
from aidetector.training.distill import Teacher, load_teacher


class FixedLogits(nn.Module):
    """A 'network' that returns the same logits for every image of a batch."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(inputs), -1)


IMAGES = torch.zeros((4, 3, 8, 8), dtype=torch.uint8)
PREPROCESSING = Preprocessing(image_size=8)


def test_matching_the_teacher_costs_nothing_and_disagreeing_costs_more() -> None:
    teacher = Teacher(FixedLogits([2.0, -1.0]), PREPROCESSING, [0, 1], 0.7, 2.0)
    agree = teacher.distillation_loss(IMAGES, torch.tensor([[2.0, -1.0]] * 4))
    disagree = teacher.distillation_loss(IMAGES, torch.tensor([[-1.0, 2.0]] * 4))
    assert agree.item() == pytest.approx(0.0, abs=1e-6)
    assert disagree.item() > 0.5


def test_a_teacher_with_the_other_class_order_teaches_the_same_targets() -> None:
    student = torch.tensor([[0.3, 0.1]] * 4)
    same_order = Teacher(FixedLogits([2.0, -1.0]), PREPROCESSING, [0, 1], 0.7, 2.0)
    # Trained with [FAKE, REAL] where the student has [REAL, FAKE]: columns swapped back.
    other_order = Teacher(FixedLogits([-1.0, 2.0]), PREPROCESSING, [1, 0], 0.7, 2.0)
    assert other_order.distillation_loss(IMAGES, student).item() == pytest.approx(
        same_order.distillation_loss(IMAGES, student).item()
    )


def test_the_teacher_stays_frozen_in_eval_mode() -> None:
    network = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(192), nn.Linear(192, 2))
    teacher = Teacher(network, PREPROCESSING, [0, 1], 0.5, 1.0)
    teacher.train()
    assert not teacher.network.training
    assert not any(p.requires_grad for p in teacher.parameters())


def test_a_missing_teacher_is_a_one_line_error(tmp_path: Path) -> None:
    settings = DistillConfig(teacher="resnet18", weight=0.5, temperature=2.0)
    order = ClassOrder(("REAL", "FAKE"))
    with pytest.raises(AidetectorError, match="train it first") as error:
        load_teacher(settings, tmp_path, order)
    assert "\n" not in str(error.value)
