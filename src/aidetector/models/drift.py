"""The input-drift profile of a model: what its inputs and scores looked like at evaluation.

Evaluation records, for the test split, the distribution of a few cheap per-image features
and of the predicted P(FAKE); registration puts that reference (drift_reference.json, plus
the `drift` section of config.yaml) into every registered version's directory, so it travels
with the weights. Serving computes the same features on each image it decodes and compares
a rolling window with the reference by the population stability index (PSI).

The features come from what serving has anyway: the native width and height from the
header, and the model's uint8 input (after the one resize of preprocessing.py), on which
brightness, saturation and a high-frequency energy are a few array operations.

PSI = sum over bins of (actual - expected) * ln(actual / expected), bins fixed at
evaluation from the reference's deciles. By the usual convention, below 0.1 is stable,
0.1-0.25 a moderate shift, above 0.25 a significant one (serve.drift_psi_alert).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aidetector.errors import AidetectorError
from aidetector.models.files import checked_section_file

DRIFT_FILE = "drift_reference.json"
FORMAT_VERSION = 1
# Computed from the image alone, in this order (image_features' columns).
IMAGE_FEATURES: tuple[str, ...] = (
    "width",
    "height",
    "aspect_ratio",
    "brightness",
    "saturation",
    "high_freq",
)
PREDICTION_FEATURE = "prob_fake"
FEATURES: tuple[str, ...] = (*IMAGE_FEATURES, PREDICTION_FEATURE)
# Deciles: the conventional 10 PSI bins, plus one below the reference's minimum and one
# above its maximum.
QUANTILES = np.linspace(0.0, 0.9, 10)
# Floor for a bin's share, so that an empty bin costs a finite amount (the common 1e-4).
PSI_FLOOR = 1e-4
# Largest side image_features reads: bigger inputs are read at a stride (see there).
STATS_SIDE = 64
# Images per image_features call when fitting a reference.
CHUNK = 256
# Native (width, height) per image: a list of pairs, or an (N, 2) array.
Sizes = Sequence[tuple[int, int]] | np.ndarray
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def image_features(arrays: np.ndarray, sizes: Sizes) -> np.ndarray:
    """Return float64 (N, len(IMAGE_FEATURES)) for uint8 (N, H, W, 3) model inputs.

    sizes are the native (width, height) before the resize; brightness and saturation are
    means in [0, 1] (luma, and HSV saturation); high_freq is the variance of the 4-neighbour
    Laplacian of the luma, the usual sharpness measure: upsampled, smoothed or heavily
    downscaled images differ there first. Inputs above STATS_SIDE are read at a stride.
    """
    if arrays.ndim != 4 or arrays.shape[3] != 3 or arrays.dtype != np.uint8:
        raise AidetectorError(
            f"expected uint8 (N, H, W, 3) arrays, got {arrays.dtype} {arrays.shape}"
        )
    if len(sizes) != len(arrays):
        raise AidetectorError(f"{len(arrays)} images but {len(sizes)} sizes")
    # Every STATS_SIDE-th pixel at most: the means barely move, and a 224 px input costs
    # what a 56 px one does (4.5 ms -> well under 1 ms per image on one core).
    step = max(1, -(-arrays.shape[1] // STATS_SIDE))
    sample = arrays[:, ::step, ::step]
    brightest = sample.max(axis=3).astype(np.float32)
    spread = brightest - sample.min(axis=3)
    saturation = np.divide(spread, brightest, out=np.zeros_like(spread), where=brightest > 0)
    luma = sample.astype(np.float32) @ (LUMA / np.float32(255.0))
    laplacian = (
        4.0 * luma[:, 1:-1, 1:-1]
        - luma[:, :-2, 1:-1]
        - luma[:, 2:, 1:-1]
        - luma[:, 1:-1, :-2]
        - luma[:, 1:-1, 2:]
    )
    size = np.asarray(sizes, dtype=np.float64).reshape(len(arrays), 2)
    width, height = size[:, 0], size[:, 1]
    aspect = np.divide(width, height, out=np.zeros_like(width), where=height > 0)
    return np.stack(
        [
            width,
            height,
            aspect,
            luma.mean(axis=(1, 2), dtype=np.float64),
            saturation.mean(axis=(1, 2), dtype=np.float64),
            laplacian.var(axis=(1, 2), dtype=np.float64),
        ],
        axis=1,
    )


@dataclass(frozen=True)
class FeatureBins:
    """Fixed bin edges of one feature and the reference's share of each bin.

    Bin i holds edges[i-1] <= x < edges[i]: bin 0 is below the reference's minimum, the last
    bin above its maximum, so a value never seen in evaluation lands in a bin of its own.
    """

    edges: tuple[float, ...]
    expected: tuple[float, ...]

    @classmethod
    def fit(cls, values: np.ndarray) -> FeatureBins:
        """Bins at the reference's deciles; a constant feature gets one bin for its value."""
        values = np.asarray(values, dtype=np.float64)
        inner = np.unique(np.quantile(values, QUANTILES))
        edges = np.append(inner, np.nextafter(values.max(), math.inf))
        counts = bin_counts(edges, values)
        return cls(tuple(edges.tolist()), tuple((counts / counts.sum()).tolist()))

    def psi(self, values: np.ndarray) -> float:
        """Return the population stability index of values against the reference."""
        counts = bin_counts(np.asarray(self.edges), np.asarray(values, dtype=np.float64))
        actual = np.maximum(counts / max(counts.sum(), 1), PSI_FLOOR)
        expected = np.maximum(np.asarray(self.expected), PSI_FLOOR)
        return float(np.sum((actual - expected) * np.log(actual / expected)))


def bin_counts(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Return how many values fall in each of the len(edges) + 1 bins of FeatureBins."""
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)


class DriftReference:
    """Per-feature bins of the evaluation data: what serving's window is compared with."""

    def __init__(self, bins: Mapping[str, FeatureBins], samples: int) -> None:
        self.bins = dict(bins)
        self.samples = int(samples)

    @property
    def features(self) -> tuple[str, ...]:
        """The features the reference has, in FEATURES order."""
        return tuple(name for name in FEATURES if name in self.bins)

    def psi(self, window: np.ndarray) -> dict[str, float]:
        """Return each feature's PSI for a (N, len(FEATURES)) window of feature rows."""
        return {
            name: self.bins[name].psi(window[:, FEATURES.index(name)]) for name in self.features
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON content of drift_reference.json."""
        return {
            "format_version": FORMAT_VERSION,
            "samples": self.samples,
            "psi_floor": PSI_FLOOR,
            "features": {
                name: {
                    "edges": list(self.bins[name].edges),
                    "expected": list(self.bins[name].expected),
                }
                for name in self.features
            },
        }

    def write(self, path: Path) -> Path:
        """Write the reference as JSON to path; return path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> DriftReference:
        """Rebuild from drift_reference.json's content; where names the file in errors."""
        try:
            if int(data["format_version"]) != FORMAT_VERSION:
                raise AidetectorError(
                    f"{where} has format_version {data['format_version']}; this version reads "
                    f"{FORMAT_VERSION}: re-run the evaluation"
                )
            bins = {}
            for name, values in dict(data["features"]).items():
                if name not in FEATURES:
                    raise AidetectorError(f"{where}: unknown drift feature {name!r}")
                edges = tuple(float(v) for v in values["edges"])
                expected = tuple(float(v) for v in values["expected"])
                if len(expected) != len(edges) + 1 or list(edges) != sorted(edges):
                    raise AidetectorError(f"{where}: feature {name} has inconsistent bins")
                bins[name] = FeatureBins(edges, expected)
            return cls(bins, int(data["samples"]))
        except (KeyError, TypeError, ValueError) as error:
            raise AidetectorError(
                f"{where} is incomplete ({error}); re-run the evaluation"
            ) from error

    @classmethod
    def read(cls, path: Path) -> DriftReference:
        """Read drift_reference.json."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise AidetectorError(f"cannot read {path}: {error}") from error
        if not isinstance(data, dict):
            raise AidetectorError(f"{path} is not a JSON object")
        return cls.from_dict(data, str(path))

    @classmethod
    def load(cls, model_dir: Path, section: Mapping[str, Any]) -> DriftReference:
        """Read the reference that config.yaml's `drift` section names, checking its sha256."""
        path = checked_section_file(model_dir, section, DRIFT_FILE, "drift")
        return cls.read(path)


def fit_drift_reference(arrays: np.ndarray, sizes: Sizes, prob_fake: np.ndarray) -> DriftReference:
    """Return the reference of a scored set: model inputs, native sizes and P(FAKE).

    Features that were not recorded (native sizes of a manifest that predates them, stored
    as -1) are left out, so they never alarm; serving then exports no score for them.
    """
    if len(arrays) == 0:
        raise AidetectorError("a drift reference needs at least one image")
    # In chunks: the float copy of a whole 224 px test split would take gigabytes.
    chunks = [
        image_features(arrays[start : start + CHUNK], sizes[start : start + CHUNK])
        for start in range(0, len(arrays), CHUNK)
    ]
    rows = np.concatenate(
        [np.concatenate(chunks), np.asarray(prob_fake, dtype=np.float64)[:, None]], axis=1
    )
    known_size = bool(np.all(np.asarray(sizes) > 0))
    bins = {
        name: FeatureBins.fit(rows[:, index])
        for index, name in enumerate(FEATURES)
        if known_size or name not in ("width", "height", "aspect_ratio")
    }
    return DriftReference(bins, len(rows))
