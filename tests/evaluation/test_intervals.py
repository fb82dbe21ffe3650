"""Intervals of suite figures: the point values match the metrics, the intervals cover what
they claim, and paired differences cancel what two models share."""

from __future__ import annotations

import numpy as np
import pytest

from aidetector.evaluation.calibration import expected_calibration_error
from aidetector.evaluation.intervals import (
    INTERVAL_METRICS,
    WEIGHTED_METRICS,
    Difference,
    calibrated_ece_range,
    metric_intervals,
    paired_difference,
    stratified_weights,
    wilson_interval,
)
from aidetector.evaluation.metrics import classification_metrics
from aidetector.labels import ClassOrder

ORDER = ClassOrder.from_names(("REAL", "FAKE"))


def detector(n: int, seed: int, skill: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Return (is_fake, P(FAKE)) of a noisy detector on n images, half of them FAKE."""
    rng = np.random.default_rng(seed)
    is_fake = np.arange(n) % 2 == 1
    prob = np.where(is_fake, rng.beta(skill, 1.5, n), rng.beta(1.5, skill, n))
    return is_fake, prob


def test_weighted_metrics_with_unit_weights_equal_the_suite_metrics() -> None:
    is_fake, prob = detector(600, seed=1)
    labels = is_fake.astype(int)  # REAL=0, FAKE=1
    reference = classification_metrics(labels, prob, ORDER)
    reference["ece"] = expected_calibration_error(labels, prob, fake_index=1)
    everyone = np.ones((1, len(prob)))
    for name in INTERVAL_METRICS:
        value = WEIGHTED_METRICS[name](everyone, is_fake, prob)[0]
        assert value == pytest.approx(reference[name], abs=1e-6), name


def test_resamples_keep_the_class_counts_and_repeat_from_the_seed() -> None:
    is_fake = np.arange(50) < 20
    first = np.concatenate(list(stratified_weights(is_fake, resamples=450, seed=3)))
    again = np.concatenate(list(stratified_weights(is_fake, resamples=450, seed=3)))
    assert first.shape == (450, 50)
    np.testing.assert_array_equal(first, again)
    assert (first[:, is_fake].sum(axis=1) == 20).all()
    assert (first[:, ~is_fake].sum(axis=1) == 30).all()


def test_every_interval_holds_its_point_value_and_narrows_with_n() -> None:
    widths = {}
    for n in (200, 2000):
        is_fake, prob = detector(n, seed=2)
        intervals = metric_intervals(is_fake, prob, resamples=400)
        everyone = np.ones((1, n))
        for name in INTERVAL_METRICS:
            value = WEIGHTED_METRICS[name](everyone, is_fake, prob)[0]
            low, high = intervals[f"{name}_low"], intervals[f"{name}_high"]
            assert low <= high, name
            if name != "ece":  # ECE is biased upwards: its point may sit near the top
                assert low <= value <= high, name
            widths[(name, n)] = high - low
    for name in INTERVAL_METRICS:
        assert widths[(name, 2000)] < widths[(name, 200)], name


def test_wilson_matches_the_textbook_value() -> None:
    # 95 of 100: Wilson's interval is [0.888, 0.978] (Newcombe 1998, method 3).
    low, high = wilson_interval(95, 100)
    assert low == pytest.approx(0.8883, abs=1e-3) and high == pytest.approx(0.9785, abs=1e-3)
    assert all(np.isnan(wilson_interval(0, 0)))


def test_the_accuracy_interval_covers_the_true_accuracy_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):
        right = rng.random(240) < 0.9
        low, high = wilson_interval(int(right.sum()), 240)
        covered += low <= 0.9 <= high
    assert 0.92 <= covered / 400 <= 0.98


def test_a_paired_difference_of_a_model_with_itself_is_exactly_zero() -> None:
    is_fake, prob = detector(500, seed=4)
    same = paired_difference("f1_fake", is_fake, prob, prob)
    assert (same.value, same.low, same.high, same.n) == (0.0, 0.0, 0.0, 500)


def test_pairing_resolves_a_difference_that_two_separate_intervals_cannot() -> None:
    # b fixes 25 of a's mistakes on 1,000 images and adds none: +2.5 points of accuracy.
    is_fake, prob_a = detector(1000, seed=5, skill=2.5)
    wrong = np.flatnonzero((prob_a >= 0.5) != is_fake)[:25]
    prob_b = prob_a.copy()
    prob_b[wrong] = np.where(is_fake[wrong], 0.9, 0.1)

    difference = paired_difference("accuracy", is_fake, prob_a, prob_b)

    assert difference.value == pytest.approx(0.025)
    assert difference.low > 0  # resolved
    a = metric_intervals(is_fake, prob_a, resamples=200)
    b = metric_intervals(is_fake, prob_b, resamples=200)
    assert b["accuracy_low"] < a["accuracy_high"]  # separately, the intervals overlap


def test_a_difference_describes_itself_in_points_with_its_interval() -> None:
    text = Difference("accuracy", 0.004, -0.011, 0.019, 1996).describe()
    assert text == "+0.4 pp [-1.1, +1.9] on 1,996 images"


def test_paired_outputs_must_be_the_same_images() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        paired_difference("accuracy", np.ones(3, bool), np.ones(3), np.ones(4))


def test_the_calibrated_ece_range_shrinks_with_n_and_sits_above_zero() -> None:
    tops = []
    for n in (240, 1000, 10_000):
        _, prob = detector(n, seed=6)
        low, high = calibrated_ece_range(prob, resamples=300)
        assert 0 < low < high
        tops.append(high)
    assert tops[0] > tops[1] > tops[2]
