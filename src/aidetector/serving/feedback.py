"""Labelled feedback: remembers recent verdicts and keeps the rolling accuracy over labels.

Until the first label arrives, model_accuracy is the registered test accuracy. A second
label for the same image replaces the first, so a retried request is not counted twice.

No single client can move model_accuracy (and fire the "accuracy dropped, roll back" alert)
by itself. Each label carries its source, the feedback key's name. The gauge follows the
window only while the window holds labels from at least `min_sources` sources; below that it
shows the registered accuracy, and model_accuracy_samples 0. And no source holds more than
window // min_sources labels of the window: its own oldest label leaves first, so one source
can flood at most that share. Per-source rate limits are the access middleware's.
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
    # What model_accuracy now says: the window's accuracy once enough sources count, the
    # registered accuracy before (None when the model has none).
    accuracy: float | None
    # Labels behind model_accuracy: 0 until enough sources count.
    samples: int
    # Distinct sources in the window, and how many it takes to count.
    sources: int
    sources_needed: int


class FeedbackTracker:
    """Bounded memory of recent verdicts plus a rolling window of right/wrong outcomes."""

    def __init__(
        self,
        memory: int,
        window: int,
        model_version: str,
        registered_accuracy: float | None,
        metrics: ServiceMetrics,
        min_sources: int = 1,
    ) -> None:
        self.memory = memory
        self.window = window
        self.metrics = metrics
        self.min_sources = min_sources
        self.source_share = max(1, window // min_sources)
        self.registered_accuracy = registered_accuracy
        self._verdicts: OrderedDict[str, str] = OrderedDict()
        self._outcomes: OrderedDict[str, tuple[bool, str]] = OrderedDict()
        self._by_source: dict[str, OrderedDict[str, None]] = {}
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

    def _drop(self, image_id: str) -> None:
        correct, source = self._outcomes.pop(image_id)
        self._correct -= correct
        own = self._by_source[source]
        del own[image_id]
        if not own:
            del self._by_source[source]

    def record(
        self, image_id: str, true_label: str, predicted: str, source: str = "anonymous"
    ) -> FeedbackOutcome:
        """Add (or replace) source's outcome for image_id and update model_accuracy."""
        correct = true_label == predicted
        with self._lock:
            if image_id in self._outcomes:
                self._drop(image_id)
            self._outcomes[image_id] = (correct, source)
            self._correct += correct
            own = self._by_source.setdefault(source, OrderedDict())
            own[image_id] = None
            while len(own) > self.source_share:
                self._drop(next(iter(own)))
            while len(self._outcomes) > self.window:
                self._drop(next(iter(self._outcomes)))
            sources = len(self._by_source)
            if sources >= self.min_sources:
                samples = len(self._outcomes)
                accuracy: float | None = self._correct / samples
            else:
                samples, accuracy = 0, self.registered_accuracy
        if accuracy is not None:
            self._accuracy.set(accuracy)
        self._samples.set(samples)
        self.metrics.feedback.labels(outcome="correct" if correct else "incorrect").inc()
        return FeedbackOutcome(predicted, correct, accuracy, samples, sources, self.min_sources)
