"""Tests for aidetector.data.demo: the synthetic REAL/FAKE stand-in dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aidetector.data.demo import generate_demo_dataset
from aidetector.data.ingest import ingest_image_folder
from aidetector.data.splits import SplitRatios
from aidetector.errors import AidetectorError


def _files(root: Path) -> dict[str, bytes]:
    """Return every file under root by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.jpg"))}


def _load(folder: Path) -> np.ndarray:
    """Return the folder's images as an (N, H, W, 3) float array."""
    return np.stack([np.asarray(Image.open(p), dtype=np.float64) for p in sorted(folder.iterdir())])


def _laplacian_variance(images: np.ndarray) -> np.ndarray:
    """Return each image's variance of the 4-neighbour Laplacian of its grey level."""
    grey = images.mean(axis=-1)
    laplacian = (
        4 * grey[:, 1:-1, 1:-1]
        - grey[:, :-2, 1:-1]
        - grey[:, 2:, 1:-1]
        - grey[:, 1:-1, :-2]
        - grey[:, 1:-1, 2:]
    )
    return laplacian.var(axis=(1, 2))


def _best_threshold_accuracy(real: np.ndarray, fake: np.ndarray) -> float:
    """Return the best accuracy any single threshold on a scalar feature reaches."""
    values = np.concatenate([real, fake])
    is_fake = np.concatenate([np.zeros(len(real), bool), np.ones(len(fake), bool)])
    return max(
        max(np.mean((values > t) == is_fake), np.mean((values <= t) == is_fake))
        for t in np.unique(values)
    )


@pytest.mark.parametrize("image_size", [24, 33])
def test_writes_n_per_class_rgb_jpegs_at_image_size(tmp_path: Path, image_size: int) -> None:
    generate_demo_dataset(tmp_path / "demo", n_per_class=4, image_size=image_size, seed=0)

    files = sorted(_files(tmp_path / "demo"))
    assert files == [f"FAKE/fake_0000{i}.jpg" for i in range(4)] + [
        f"REAL/real_0000{i}.jpg" for i in range(4)
    ]
    for name in files:
        with Image.open(tmp_path / "demo" / name) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (image_size,) * 2)


def test_same_arguments_give_byte_identical_files_and_a_new_seed_differs(tmp_path: Path) -> None:
    generate_demo_dataset(tmp_path / "a", 5, 16, seed=3)
    generate_demo_dataset(tmp_path / "b", 5, 16, seed=3)
    generate_demo_dataset(tmp_path / "c", 5, 16, seed=4)

    first, second, other = (_files(tmp_path / name) for name in "abc")
    assert first == second
    assert all(first[name] != other[name] for name in first)


def test_regenerating_removes_stale_files(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    generate_demo_dataset(root, 6, 16)
    (root / "REAL" / "stale.png").write_bytes(b"old")

    generate_demo_dataset(root, 2, 16)

    assert sorted(_files(root)) == [
        "FAKE/fake_00000.jpg",
        "FAKE/fake_00001.jpg",
        "REAL/real_00000.jpg",
        "REAL/real_00001.jpg",
    ]
    assert not (root / "REAL" / "stale.png").exists()


def test_colour_does_not_separate_the_classes_but_high_frequency_energy_does(
    tmp_path: Path,
) -> None:
    generate_demo_dataset(tmp_path, 200, 32, seed=0)
    real, fake = _load(tmp_path / "REAL"), _load(tmp_path / "FAKE")

    mean_difference = np.abs(real.mean(axis=(0, 1, 2)) - fake.mean(axis=(0, 1, 2)))
    assert mean_difference.max() < 6.0  # of 255 levels: same scene statistics
    for channel in range(3):
        accuracy = _best_threshold_accuracy(
            real[..., channel].mean(axis=(1, 2)), fake[..., channel].mean(axis=(1, 2))
        )
        assert accuracy < 0.62, f"channel {channel} mean alone separates the classes"
    real_hf, fake_hf = _laplacian_variance(real), _laplacian_variance(fake)
    assert fake_hf.mean() < 0.5 * real_hf.mean()
    assert _best_threshold_accuracy(real_hf, fake_hf) > 0.8


def test_demo_data_ingests_without_skips(tmp_path: Path) -> None:
    generate_demo_dataset(tmp_path / "demo", 10, 16)

    report = ingest_image_folder(tmp_path / "demo", 16, SplitRatios(), seed=0).report

    assert report.kept == {"REAL": 10, "FAKE": 10} and report.skipped_total == 0
    assert report.duplicates == 0


@pytest.mark.parametrize(("n_per_class", "image_size"), [(0, 32), (3, 4)])
def test_rejects_empty_or_tiny_requests(tmp_path: Path, n_per_class: int, image_size: int) -> None:
    with pytest.raises(AidetectorError, match="must be at least"):
        generate_demo_dataset(tmp_path, n_per_class, image_size)
