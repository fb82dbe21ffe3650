"""Flat classification metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from aidetector.evaluation.metrics import classification_metrics, roc_points
from aidetector.labels import ClassOrder

ORDER = ClassOrder(("REAL", "FAKE"))


def test_metrics_match_a_hand_computed_confusion_matrix() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    prob_fake = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9, 0.4, 0.6])
    metrics = classification_metrics(labels, prob_fake, ORDER)
    # TN=3 FP=1 FN=1 TP=3
    assert (
        metrics["true_real"],
        metrics["false_fake"],
        metrics["false_real"],
        metrics["true_fake"],
    ) == (3, 1, 1, 3)
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["precision_fake"] == pytest.approx(0.75)
    assert metrics["recall_fake"] == pytest.approx(0.75)
    assert metrics["f1_fake"] == pytest.approx(0.75)
    assert metrics["f1_real"] == pytest.approx(0.75)
    assert metrics["roc_auc"] == pytest.approx(14 / 16)


def test_roc_runs_from_origin_to_one() -> None:
    points = roc_points(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.4, 0.6]), ORDER)
    assert points[0]["fpr"] == 0.0 and points[-1]["tpr"] == 1.0
