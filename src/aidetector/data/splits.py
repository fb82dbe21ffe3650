"""Split ratios and the seeded, per-class (stratified) assignment of images to splits."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aidetector.errors import AidetectorError

SPLITS: tuple[str, str, str] = ("train", "val", "test")
_TOLERANCE = 1e-6


@dataclass(frozen=True)
class SplitRatios:
    """Fractions of each class that go to train, val and test; they must sum to 1.

    test may be 0 only when the source folder brings its own test/ split (checked at ingest).
    """

    train: float = 0.8
    val: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        values = {"train": self.train, "val": self.val, "test": self.test}
        if any(not math.isfinite(v) for v in values.values()):
            raise AidetectorError(f"split ratios must be finite numbers, got {values}")
        if self.train <= 0 or self.val <= 0 or self.test < 0:
            raise AidetectorError(
                f"split ratios need train > 0, val > 0 and test >= 0, got {values}"
            )
        if abs(self.train + self.val + self.test - 1.0) > _TOLERANCE:
            total = self.train + self.val + self.test
            raise AidetectorError(f"split ratios must sum to 1, got {values} (sum {total:g})")

    def to_dict(self) -> dict[str, float]:
        """Plain dict for reports and configs."""
        return {"train": self.train, "val": self.val, "test": self.test}


def assign_splits(
    labels: np.ndarray,
    class_folders: Sequence[str],
    ratios: SplitRatios,
    seed: int,
    source_has_test: bool,
) -> dict[str, np.ndarray]:
    """Return sorted pool indices per split, drawn per class with one seeded permutation each.

    class_folders names each class's source folder in error messages. With source_has_test
    the pool only feeds train and val (val gets val / (train + val)) and "test" comes back
    empty, because the source's own test folder supplies that split.
    """
    if source_has_test:
        fractions = {"val": ratios.val / (ratios.train + ratios.val), "test": 0.0}
        minimum = 2
    else:
        fractions = {"val": ratios.val, "test": ratios.test}
        minimum = 3
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    for label, folder in enumerate(class_folders):
        members = np.flatnonzero(labels == label)
        if len(members) < minimum:
            raise AidetectorError(
                f"class folder {folder} has {len(members)} usable image(s) after removing bad "
                f"files and duplicates; add images: at least {minimum} are needed to fill "
                f"every split"
            )
        counts = _allocate(len(members), fractions)
        shuffled = members[rng.permutation(len(members))]
        start = 0
        for split in SPLITS:
            chosen[split].append(shuffled[start : start + counts[split]])
            start += counts[split]
    return {split: np.sort(np.concatenate(parts)) for split, parts in chosen.items()}


def _allocate(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Return per-split counts for n images: rounded fractions, at least 1 where nonzero."""
    counts = {
        split: max(1, math.floor(n * fraction + 0.5)) if fraction > 0 else 0
        for split, fraction in fractions.items()
    }
    # Tiny classes: shrink the bigger held-out split until train keeps at least one image.
    while n - sum(counts.values()) < 1:
        largest = max(counts, key=lambda split: counts[split])
        counts[largest] -= 1
    return {"train": n - sum(counts.values()), **counts}
