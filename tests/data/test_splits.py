"""Tests for aidetector.data.splits: ratio validation and stratified split assignment."""

from __future__ import annotations

import numpy as np
import pytest

from aidetector.data.splits import SPLITS, SplitRatios, assign_splits
from aidetector.errors import AidetectorError

FOLDERS = ["data/REAL", "data/FAKE"]


def _labels(real: int, fake: int) -> np.ndarray:
    """Return shuffled labels with the given class sizes."""
    labels = np.array([0] * real + [1] * fake, dtype=np.int64)
    return np.random.default_rng(real * 1000 + fake).permutation(labels)


@pytest.mark.parametrize("ratios", [SplitRatios(), SplitRatios(0.5, 0.3, 0.2)])
def test_every_class_size_is_split_within_one_image_of_the_ratios(ratios: SplitRatios) -> None:
    for real in range(3, 60, 4):
        for fake in (3, 7, 101):
            labels = _labels(real, fake)
            splits = assign_splits(labels, FOLDERS, ratios, seed=real, source_has_test=False)

            combined = np.concatenate([splits[s] for s in SPLITS])
            assert sorted(combined.tolist()) == list(range(len(labels)))  # a partition
            for label, total in ((0, real), (1, fake)):
                for split, ratio in ratios.to_dict().items():
                    count = int(np.sum(labels[splits[split]] == label))
                    assert count >= 1
                    # Below this, the one-image-per-split minimum outweighs the ratios.
                    if total * min(ratios.to_dict().values()) >= 0.5:
                        assert abs(count - ratio * total) <= 1, (real, fake, split)


def test_with_a_source_test_split_the_pool_fills_train_and_val_only() -> None:
    labels = _labels(40, 20)

    splits = assign_splits(
        labels, FOLDERS, SplitRatios(0.7, 0.2, 0.1), seed=0, source_has_test=True
    )

    assert len(splits["test"]) == 0
    # val takes val / (train + val) = 2/9 of each class.
    assert [int(np.sum(labels[splits["val"]] == c)) for c in (0, 1)] == [9, 4]
    tiny = assign_splits(np.array([0, 0, 1, 1]), FOLDERS, SplitRatios(), 0, source_has_test=True)
    assert [len(tiny[s]) for s in SPLITS] == [2, 2, 0]


def test_same_seed_gives_the_same_split_and_another_seed_a_different_one() -> None:
    labels = _labels(50, 50)

    first = assign_splits(labels, FOLDERS, SplitRatios(), seed=1, source_has_test=False)
    again = assign_splits(labels, FOLDERS, SplitRatios(), seed=1, source_has_test=False)
    other = assign_splits(labels, FOLDERS, SplitRatios(), seed=2, source_has_test=False)

    assert all(np.array_equal(first[s], again[s]) for s in SPLITS)
    assert not np.array_equal(first["val"], other["val"])


@pytest.mark.parametrize(("real", "source_has_test"), [(2, False), (1, True)])
def test_a_class_too_small_to_split_raises_naming_its_folder(
    real: int, source_has_test: bool
) -> None:
    with pytest.raises(AidetectorError, match="data/REAL has"):
        assign_splits(_labels(real, 10), FOLDERS, SplitRatios(), 0, source_has_test)


@pytest.mark.parametrize(
    "values",
    [(0.8, 0.1, 0.2), (1.0, 0.0, 0.0), (0.0, 0.5, 0.5), (0.9, 0.2, -0.1), (float("nan"), 0.5, 0.5)],
)
def test_invalid_ratios_are_rejected(values: tuple[float, float, float]) -> None:
    with pytest.raises(AidetectorError, match="split ratios"):
        SplitRatios(*values)


def test_a_zero_test_ratio_is_allowed_for_sources_with_their_own_test_split() -> None:
    assert SplitRatios(0.9, 0.1, 0.0).to_dict() == {"train": 0.9, "val": 0.1, "test": 0.0}
