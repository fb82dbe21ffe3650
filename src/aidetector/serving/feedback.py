"""Labelled feedback: remembers recent verdicts and keeps the rolling accuracy over labels.

Until the first label arrives, model_accuracy is the registered test accuracy. A second
label for the same image replaces the first, so a retried request is not counted twice.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from aidetector.serving.metrics import ServiceMetrics


@dataclass(frozen=True)
class FeedbackOutcome:
    """The effect of one label on the rolling accuracy."""

    predicted: str
    correct: bool
    accuracy: float
    samples: int


class FeedbackTracker:
    """Bounded memory of recent verdicts plus a rolling window of right/wrong outcomes."""

    def __init__(
        self,
        memory: int,
        window: int,
        model_version: str,
        registered_accuracy: float | None,
        metrics: ServiceMetrics,
    ) -> None:
        self.memory = memory
        self.window = window
        self.metrics = metrics
        self._verdicts: OrderedDict[str, str] = OrderedDict()
        self._outcomes: OrderedDict[str, bool] = OrderedDict()
        self._correct = 0
        self._lock = threading.Lock()
        self._accuracy = metrics.model_accuracy.labels(model_version=model_version)
        self._samples = metrics.accuracy_samples.labels(model_version=model_version)
        if registered_accuracy is not None:
            self._accuracy.set(registered_accuracy)
            metrics.registered_accuracy.labels(model_version=model_version).set(registered_accuracy)
        self._samples.set(0)

    def remember(self, image_id: str, label: str) -> None:
        """Record the verdict served for image_id, forgetting the oldest beyond memory."""
        with self._lock:
            self._verdicts[image_id] = label
            self._verdicts.move_to_end(image_id)
            while len(self._verdicts) > self.memory:
                self._verdicts.popitem(last=False)

    def verdict(self, image_id: str) -> str | None:
        """Return the label this process served for image_id, if it still remembers it."""
        with self._lock:
            return self._verdicts.get(image_id)

    def record(self, image_id: str, true_label: str, predicted: str) -> FeedbackOutcome:
        """Add (or replace) the outcome for image_id and update model_accuracy."""
        correct = true_label == predicted
        with self._lock:
            previous = self._outcomes.pop(image_id, None)
            if previous is not None:
                self._correct -= previous
            self._outcomes[image_id] = correct
            self._correct += correct
            while len(self._outcomes) > self.window:
                _, dropped = self._outcomes.popitem(last=False)
                self._correct -= dropped
            samples = len(self._outcomes)
            accuracy = self._correct / samples
        self._accuracy.set(accuracy)
        self._samples.set(samples)
        self.metrics.feedback.labels(outcome="correct" if correct else "incorrect").inc()
        return FeedbackOutcome(predicted, correct, accuracy, samples)
