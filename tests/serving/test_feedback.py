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


def two_source_tracker(version: str, window: int = 6) -> FeedbackTracker:
    return FeedbackTracker(100, window, version, 0.9, service_metrics(), min_sources=2)


def test_one_source_alone_leaves_the_registered_accuracy() -> None:
    feedback = two_source_tracker("u5")
    outcomes = [feedback.record(f"id{i}", "REAL", "FAKE", "mallory") for i in range(5)]
    assert {(o.accuracy, o.samples, o.sources) for o in outcomes} == {(0.9, 0, 1)}
    assert gauge("u5") == pytest.approx(0.9)
    assert REGISTRY.get_sample_value("model_accuracy_samples", {"model_version": "u5"}) == 0


def test_a_second_source_makes_the_window_count() -> None:
    feedback = two_source_tracker("u6")
    feedback.record("a", "REAL", "FAKE", "alice")
    outcome = feedback.record("b", "FAKE", "FAKE", "bob")
    assert (outcome.sources, outcome.samples, outcome.accuracy) == (2, 2, 0.5)
    assert gauge("u6") == pytest.approx(0.5)


def test_no_source_holds_more_than_its_share_of_the_window() -> None:
    feedback = two_source_tracker("u7", window=6)  # at most 3 labels per source
    for i in range(3):
        feedback.record(f"honest{i}", "FAKE", "FAKE", "alice")
    for i in range(20):  # a flood of wrong labels pushes out only mallory's own
        outcome = feedback.record(f"flood{i}", "REAL", "FAKE", "mallory")
    assert (outcome.samples, outcome.accuracy) == (6, 0.5)


def test_when_a_source_leaves_the_window_the_gauge_falls_back() -> None:
    feedback = two_source_tracker("u8", window=2)  # one label per source
    feedback.record("a", "REAL", "FAKE", "alice")
    assert feedback.record("b", "REAL", "FAKE", "bob").samples == 2
    outcome = feedback.record("a", "FAKE", "FAKE", "bob")  # bob relabels alice's image
    assert (outcome.sources, outcome.samples, outcome.accuracy) == (1, 0, 0.9)
    assert gauge("u8") == pytest.approx(0.9)
