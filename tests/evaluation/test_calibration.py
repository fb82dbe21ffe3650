"""Temperature scaling, top-label ECE, Brier score and reliability bins."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aidetector.evaluation.calibration import (
    brier_score,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)


def calibrated_logits(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (N, 2) logits and labels drawn from them: P(FAKE) = softmax(logits)[:, 1] is true."""
    generator = torch.Generator().manual_seed(seed)
    margin = torch.randn(n, generator=generator) * 2.0
    logits = torch.stack([torch.zeros(n), margin], dim=1)
    labels = (torch.rand(n, generator=generator) < torch.sigmoid(margin)).long()
    return logits, labels


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    return float(torch.nn.functional.cross_entropy(logits / temperature, labels))


def prob_fake(logits: torch.Tensor, temperature: float = 1.0) -> np.ndarray:
    return (logits / temperature).softmax(dim=1)[:, 1].numpy()


def test_overconfident_logits_get_a_temperature_above_one_that_lowers_nll_and_ece() -> None:
    logits, labels = calibrated_logits(4000)
    overconfident = 5.0 * logits

    temperature = fit_temperature(overconfident, labels)

    assert temperature > 1.0
    assert temperature == pytest.approx(5.0, rel=0.2)
    assert nll(overconfident, labels, temperature) < nll(overconfident, labels)
    before = expected_calibration_error(labels.numpy(), prob_fake(overconfident), fake_index=1)
    after = expected_calibration_error(
        labels.numpy(), prob_fake(overconfident, temperature), fake_index=1
    )
    assert after < before


def test_calibrated_logits_keep_a_temperature_near_one() -> None:
    logits, labels = calibrated_logits(4000, seed=1)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.15)


def test_temperature_does_not_change_any_verdict() -> None:
    logits, labels = calibrated_logits(500, seed=2)
    overconfident = 5.0 * logits
    temperature = fit_temperature(overconfident, labels)
    np.testing.assert_array_equal(
        prob_fake(overconfident, temperature) >= 0.5, prob_fake(overconfident) >= 0.5
    )


def test_fitting_works_on_inference_mode_tensors_and_empty_data_gives_one() -> None:
    logits, labels = calibrated_logits(200, seed=3)
    with torch.inference_mode():
        frozen = 5.0 * logits
    assert fit_temperature(frozen, labels) > 1.0
    assert fit_temperature(torch.empty(0, 2), torch.empty(0, dtype=torch.long)) == 1.0


def test_ece_is_top_label_over_ten_bins_by_hand() -> None:
    # Top-label confidences 0.92, 0.96 (bin 0.9-1.0), 0.85 (REAL verdict) and 0.62.
    labels = np.array([1, 0, 0, 0])
    probs = np.array([0.92, 0.96, 0.15, 0.62])
    # bin 0.9-1.0: accuracy 1/2, confidence 0.94; 0.85: right; 0.62: wrong.
    expected = 0.5 * abs(0.5 - 0.94) + 0.25 * abs(1 - 0.85) + 0.25 * abs(0 - 0.62)
    assert expected_calibration_error(labels, probs, fake_index=1) == pytest.approx(
        expected, abs=1e-6
    )


def test_ece_counts_fake_at_index_zero_symmetrically() -> None:
    labels = np.array([1, 0, 0, 0])
    probs = np.array([0.92, 0.96, 0.15, 0.62])
    # Swapping the class index and the labels describes the same verdicts.
    mirrored = expected_calibration_error(1 - labels, probs, fake_index=0)
    assert mirrored == pytest.approx(
        expected_calibration_error(labels, probs, fake_index=1), abs=1e-6
    )


def test_perfectly_confident_right_answers_have_zero_ece() -> None:
    labels = np.array([0, 1, 1, 0])
    assert expected_calibration_error(labels, labels.astype(float), fake_index=1) == pytest.approx(
        0.0
    )
    assert math.isnan(expected_calibration_error(np.array([]), np.array([]), fake_index=1))


def test_brier_score_is_the_mean_squared_error_of_p_fake() -> None:
    labels = np.array([1, 0, 1])
    probs = np.array([0.8, 0.3, 1.0])
    assert brier_score(labels, probs, fake_index=1) == pytest.approx((0.04 + 0.09 + 0.0) / 3)
    assert brier_score(1 - labels, probs, fake_index=0) == pytest.approx((0.04 + 0.09) / 3)
    assert math.isnan(brier_score(np.array([]), np.array([]), fake_index=1))


def test_reliability_bins_hold_accuracy_and_mean_confidence_per_bin() -> None:
    labels = np.array([1, 0, 0, 0])
    probs = np.array([0.92, 0.96, 0.15, 0.62])

    rows = reliability_bins(labels, probs, fake_index=1)

    assert [(row["bin_lower"], row["count"]) for row in rows] == [
        (pytest.approx(0.6), 1),
        (pytest.approx(0.8), 1),
        (pytest.approx(0.9), 2),
    ]
    assert [row["accuracy"] for row in rows] == [0.0, 1.0, 0.5]
    assert rows[2]["confidence"] == pytest.approx(0.94)
    assert list(rows[0]) == ["bin_lower", "bin_upper", "confidence", "accuracy", "count"]


def test_reliability_bins_count_every_sample_and_reproduce_the_ece() -> None:
    logits, labels = calibrated_logits(300, seed=4)
    probs = prob_fake(3.0 * logits)
    rows = reliability_bins(labels.numpy(), probs, fake_index=1)

    assert sum(row["count"] for row in rows) == 300
    assert all(0.5 <= row["confidence"] <= 1.0 for row in rows)
    from_bins = sum(row["count"] / 300 * abs(row["accuracy"] - row["confidence"]) for row in rows)
    assert from_bins == pytest.approx(
        expected_calibration_error(labels.numpy(), probs, fake_index=1), abs=1e-4
    )
