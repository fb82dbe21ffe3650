"""The deletion test on trained models: the map finds the evidence faster than chance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aidetector.explain import Explainer
from aidetector.faithfulness import (
    bright_square_images,
    curve_area,
    deletion_scores,
    fit_reference_model,
)
from aidetector.inference import model_prob_fake
from conftest import TINY_VIT_SPEC

CNN_SPEC = {"name": "resnet18", "family": "cnn", "arch": "resnet18", "img_size": 32}
# Training steps for each family to learn the task; the ViT (8 px patches: a 4x4 grid) is
# slower per step, so it is marked slow.
FAMILIES = {
    "cnn": pytest.param(CNN_SPEC, 40, id="cnn"),
    "vit": pytest.param(TINY_VIT_SPEC, 60, id="vit", marks=pytest.mark.slow),
}
# The map must beat random order by at least this much area (measured: 0.12 to 0.31).
MARGIN = 0.05


@pytest.mark.parametrize(("spec", "steps"), FAMILIES.values())
def test_removing_the_most_attributed_pixels_first_lowers_the_verdict_faster_than_random(
    spec: dict[str, object], steps: int, tmp_path: Path
) -> None:
    loaded = fit_reference_model(spec, tmp_path / "model", steps=steps)
    images, labels = bright_square_images(24, seed=1000)
    prob_fake = model_prob_fake(loaded, images)
    accuracy = float(((prob_fake >= 0.5) == labels).mean())
    assert accuracy >= 0.8, f"the model did not learn the task (accuracy {accuracy:.2f})"
    scores = deletion_scores(loaded, Explainer(loaded), list(images))
    assert scores.attributed_auc < scores.random_auc - MARGIN, scores


def test_curve_area_is_the_trapezoid_over_fractions_from_zero_to_one() -> None:
    assert curve_area(np.array([1.0, 1.0, 1.0])) == pytest.approx(1.0)
    assert curve_area(np.array([1.0, 0.0])) == pytest.approx(0.5)
