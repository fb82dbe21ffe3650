"""Input drift at serving time: a rolling window of per-image features against the reference.

Each worker keeps the features (models/drift.py) of the last `drift_window` images it
decoded, cached verdicts left out (an image asked for a thousand times is one image), and
every `drift_update_every` images recomputes each feature's PSI against the model's
reference and publishes it as `input_drift_psi{feature}`. Until the window holds
`drift_min_samples` images the gauges stay at 0: too few images to tell a shift from noise.

A model directory without a reference (registered before drift profiles) gets no monitor:
the drift metrics are then absent from /metrics, not zero.
"""

from __future__ import annotations

import threading

import numpy as np

from aidetector.models.drift import FEATURES, DriftReference
from aidetector.serving.logging_json import RateLimitedWarner
from aidetector.serving.metrics import ServiceMetrics


class DriftMonitor:
    """One worker's rolling window of feature rows and the PSI gauges it publishes."""

    def __init__(
        self,
        reference: DriftReference,
        metrics: ServiceMetrics,
        window: int,
        min_samples: int,
        update_every: int,
        alert_psi: float,
        warner: RateLimitedWarner,
    ) -> None:
        self.reference = reference
        self.window = window
        self.min_samples = min(min_samples, window)
        self.update_every = update_every
        self.alert_psi = alert_psi
        self.warner = warner
        self._rows = np.zeros((window, len(FEATURES)), dtype=np.float64)
        self._filled = 0
        self._next = 0  # ring position of the next row
        self._since_update = 0
        self._lock = threading.Lock()
        self._gauges = {name: metrics.drift_psi.labels(feature=name) for name in reference.features}
        self._samples = metrics.drift_samples
        for gauge in self._gauges.values():
            gauge.set(0.0)
        self._samples.set(0)
        self.scores: dict[str, float] = {}

    def add(self, rows: np.ndarray) -> None:
        """Append (N, len(FEATURES)) feature rows; republish the scores when it is time."""
        with self._lock:
            for row in rows[-self.window :]:
                self._rows[self._next] = row
                self._next = (self._next + 1) % self.window
            self._filled = min(self._filled + len(rows), self.window)
            self._since_update += len(rows)
            due = self._since_update >= self.update_every and self._filled >= self.min_samples
            if due:
                self._since_update = 0
                window = self._rows[: self._filled].copy()
            filled = self._filled
        self._samples.set(filled)
        if due:
            self._publish(self.reference.psi(window), filled)

    def _publish(self, scores: dict[str, float], samples: int) -> None:
        self.scores = scores
        for name, value in scores.items():
            self._gauges[name].set(value)
        drifted = {name: round(v, 4) for name, v in scores.items() if v > self.alert_psi}
        if drifted:  # the same threshold as the AIDetectorInputDrift alert
            self.warner.warn(
                "input_drift", psi=drifted, threshold=self.alert_psi, window_images=samples
            )
