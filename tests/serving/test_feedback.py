"""FeedbackTracker: registered accuracy first, then a rolling window over labels."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from aidetector.serving.feedback import FeedbackTracker
from aidetector.serving.metrics import service_metrics


def gauge(version: str) -> float | None:
    return REGISTRY.get_sample_value("model_accuracy", {"model_version": version})


def tracker(version: str, window: int = 3, memory: int = 4) -> FeedbackTracker:
    return FeedbackTracker(memory, window, version, 0.9, service_metrics())


def test_starts_at_the_registered_accuracy() -> None:
    tracker("u1")
    assert gauge("u1") == pytest.approx(0.9)


def test_rolling_accuracy_over_the_last_window_labels() -> None:
    feedback = tracker("u2", window=3)
    outcomes = [
        feedback.record(f"id{i}", true, "FAKE")
        for i, true in enumerate(["FAKE", "REAL", "FAKE", "FAKE"])
    ]
    assert [o.correct for o in outcomes] == [True, False, True, True]
    # The first label has left the window of 3: right, wrong... -> wrong, right, right.
    assert outcomes[-1].accuracy == pytest.approx(2 / 3) and outcomes[-1].samples == 3
    assert gauge("u2") == pytest.approx(2 / 3)


def test_a_new_label_for_the_same_image_replaces_the_old_one() -> None:
    feedback = tracker("u3")
    feedback.record("same", "REAL", "FAKE")
    outcome = feedback.record("same", "FAKE", "FAKE")
    assert (outcome.samples, outcome.accuracy) == (1, 1.0)


def test_memory_of_verdicts_is_bounded() -> None:
    feedback = tracker("u4", memory=2)
    for name in ("a", "b", "c"):
        feedback.remember(name, "REAL")
    assert feedback.verdict("a") is None
    assert feedback.verdict("c") == "REAL"
