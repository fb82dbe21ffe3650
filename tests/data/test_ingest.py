"""Tests for aidetector.data.ingest: validation, deduplication, leakage, splits and storage."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from aidetector.data.ingest import ingest_image_folder
from aidetector.data.prepared import read_manifest, read_split_meta, write_prepared
from aidetector.data.splits import SplitRatios
from aidetector.errors import AidetectorError

SIZE = 8
CIFAKE_TRAIN = Path(__file__).resolve().parents[3] / "shared/data/cifake/train"
FLAT_FIXTURE_HASH_BEFORE_GROUPS = "3cb3c79a40147e1e5790a0674135328846e50e4b5b8202cef29e1fbdf6d2802c"


def _pixels(seed: int, size: int = SIZE) -> np.ndarray:
    """Return a random RGB image; distinct seeds give distinct content."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _save(path: Path, pixels: np.ndarray, fmt: str = "PNG") -> Path:
    """Save pixels to path (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt)
    return path


def _fill(folder: Path, count: int, first_seed: int) -> None:
    """Write count distinct PNGs into folder."""
    for i in range(count):
        _save(folder / f"img_{i:03d}.png", _pixels(first_seed + i))


def _flat(root: Path, real: int = 10, fake: int = 10) -> Path:
    """Create ROOT/REAL and ROOT/FAKE with distinct images and return ROOT."""
    _fill(root / "REAL", real, 0)
    _fill(root / "FAKE", fake, 10_000)
    return root


def _hashes(dataset: object) -> dict[str, list[str]]:
    """Return the content hashes per split."""
    return {name: split.hashes for name, split in dataset.splits.items()}  # type: ignore[attr-defined]


def test_bad_files_are_skipped_and_counted_per_class_and_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _flat(tmp_path / "data", real=4, fake=4)
    jpeg = io.BytesIO()
    Image.fromarray(_pixels(99, 24)).save(jpeg, format="JPEG", quality=90)
    (root / "REAL" / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (root / "REAL" / "notes.jpg").write_text("this is not an image\n")
    (root / "FAKE" / "empty.png").write_bytes(b"")
    # Over MAX_IMAGE_PIXELS Pillow warns, over twice that it raises: both are too large.
    _save(root / "FAKE" / "big.png", _pixels(98, 40))
    _save(root / "FAKE" / "bomb.png", _pixels(97, 64))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 30 * 30)
    # A truncated file must fail even if someone enabled lenient loading process-wide.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)

    report = ingest_image_folder(root, SIZE, SplitRatios(0.5, 0.25, 0.25), seed=0).report

    assert report.scanned == {"REAL": 6, "FAKE": 7}
    assert report.kept == {"REAL": 4, "FAKE": 4}
    assert report.skipped["REAL"]["corrupt_or_truncated"] == 1
    assert report.skipped["REAL"]["not_an_image"] == 1
    assert report.skipped["FAKE"]["empty"] == 1
    assert report.skipped["FAKE"]["too_large"] == 2
    assert report.skipped_total == 5
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored after ingest


def test_duplicate_with_spaces_and_parentheses_in_name_is_removed_and_counted(
    tmp_path: Path,
) -> None:
    root = _flat(tmp_path / "data")
    original = _save(root / "REAL" / "1000.jpg", _pixels(500, 16), fmt="JPEG")
    shutil.copy(original, root / "REAL" / "1000 (9).jpg")
    # The same decoded pixels stored losslessly in another format are the same picture.
    Image.open(original).convert("RGB").save(root / "REAL" / "1000 (2).png")

    dataset = ingest_image_folder(root, SIZE, SplitRatios(), seed=0)

    assert dataset.report.duplicates == 2
    assert dataset.report.kept["REAL"] == 11
    sources = [s for split in dataset.splits.values() for s in split.sources]
    assert [s for s in sources if s.startswith("REAL/1000")] == ["REAL/1000 (2).png"]
    write_prepared(dataset, tmp_path / "out")
    with (tmp_path / "out" / "manifest.csv").open(newline="") as handle:
        assert "REAL/1000 (2).png" in {row["source"] for row in csv.DictReader(handle)}


def test_same_image_under_both_classes_is_dropped_as_label_conflict(tmp_path: Path) -> None:
    root = _flat(tmp_path / "data")
    shutil.copy(root / "REAL" / "img_000.png", root / "FAKE" / "stolen.png")

    dataset = ingest_image_folder(root, SIZE, SplitRatios(), seed=0)

    assert dataset.report.label_conflicts == 2
    assert dataset.report.kept == {"REAL": 9, "FAKE": 10}
    sources = {s for split in dataset.splits.values() for s in split.sources}
    assert "REAL/img_000.png" not in sources and "FAKE/stolen.png" not in sources


def test_test_image_also_in_train_stays_in_test_only_and_is_counted(tmp_path: Path) -> None:
    root = tmp_path / "cifake"
    _fill(root / "train" / "REAL", 8, 0)
    _fill(root / "train" / "FAKE", 8, 100)
    _fill(root / "test" / "REAL", 2, 200)
    _fill(root / "test" / "FAKE", 2, 300)
    shutil.copy(root / "test" / "REAL" / "img_000.png", root / "train" / "REAL" / "0 (1).png")

    dataset = ingest_image_folder(root, SIZE, SplitRatios(0.75, 0.25, 0.0), seed=0)

    report = dataset.report
    assert report.source_has_test and report.cross_split_duplicates == 1
    assert report.duplicates == 0
    assert dataset.splits["test"].sources == [
        "test/REAL/img_000.png",
        "test/REAL/img_001.png",
        "test/FAKE/img_000.png",
        "test/FAKE/img_001.png",
    ]
    train_val = dataset.splits["train"].sources + dataset.splits["val"].sources
    assert (
        all(s.startswith("train/") for s in train_val) and "train/REAL/0 (1).png" not in train_val
    )
    assert report.split_counts["val"] == {"REAL": 2, "FAKE": 2}


@pytest.mark.parametrize("with_test", [False, True])
def test_no_content_hash_appears_in_two_splits(tmp_path: Path, with_test: bool) -> None:
    rng = np.random.default_rng(7)
    root = tmp_path / "data"
    sources = ["train", "test"] if with_test else ["."]
    seeds = rng.integers(0, 60, size=160)  # many repeats, within and across folders/classes
    for i, seed in enumerate(seeds):
        source, name = rng.choice(sources), rng.choice(["REAL", "FAKE"])
        _save(root / source / name / f"x {i} ({seed}).png", _pixels(int(seed)))

    dataset = ingest_image_folder(root, SIZE, SplitRatios(0.6, 0.2, 0.2), seed=3)

    seen: dict[str, str] = {}
    for split, hashes in _hashes(dataset).items():
        assert len(set(hashes)) == len(hashes)
        for content_hash in hashes:
            assert seen.setdefault(content_hash, split) == split
    report = dataset.report
    removed = report.duplicates + report.cross_split_duplicates + report.label_conflicts
    assert sum(report.kept.values()) + removed == len(seeds)


@pytest.mark.parametrize(("real", "fake"), [(37, 23), (3, 40)])
def test_class_proportions_per_split_match_ratios_within_one_image(
    tmp_path: Path, real: int, fake: int
) -> None:
    ratios = SplitRatios(0.6, 0.25, 0.15)
    dataset = ingest_image_folder(_flat(tmp_path / "d", real, fake), SIZE, ratios, seed=1)

    for name, total in (("REAL", real), ("FAKE", fake)):
        for split, ratio in ratios.to_dict().items():
            count = dataset.report.split_counts[split][name]
            assert count >= 1 and abs(count - ratio * total) <= 1, (split, name, count)


def test_too_few_images_or_a_zero_test_ratio_without_test_folder_raise(tmp_path: Path) -> None:
    with pytest.raises(AidetectorError, match="at least 3") as error:
        ingest_image_folder(_flat(tmp_path / "few", 2, 5), SIZE, SplitRatios(), seed=0)
    assert str(tmp_path / "few" / "REAL") in str(error.value)
    with pytest.raises(AidetectorError, match="no test/ folder"):
        ingest_image_folder(_flat(tmp_path / "zero"), SIZE, SplitRatios(0.8, 0.2, 0.0), seed=0)


def test_writing_twice_gives_byte_identical_files_and_the_same_data_hash(tmp_path: Path) -> None:
    root = _flat(tmp_path / "data")
    outputs = []
    for attempt in ("a", "b"):
        dataset = ingest_image_folder(root, SIZE, SplitRatios(), seed=5)
        write_prepared(dataset, tmp_path / attempt)
        outputs.append({p.name: p.read_bytes() for p in sorted((tmp_path / attempt).iterdir())})

    assert outputs[0] == outputs[1]
    assert {"train_images.npy", "val_labels.npy", "manifest.csv", "report.json"} <= set(outputs[0])
    manifest = read_manifest(tmp_path / "a")
    assert manifest["data_hash"] == dataset.data_hash and manifest["image_size"] == SIZE
    assert manifest["counts"] == dataset.report.split_counts


def test_changing_one_image_or_the_seed_changes_the_data_hash(tmp_path: Path) -> None:
    root = _flat(tmp_path / "data")
    before = ingest_image_folder(root, SIZE, SplitRatios(), seed=0).data_hash
    pixels = _pixels(4)
    pixels[0, 0] ^= 1
    _save(root / "REAL" / "img_004.png", pixels)

    after = ingest_image_folder(root, SIZE, SplitRatios(), seed=0).data_hash
    reseeded = ingest_image_folder(root, SIZE, SplitRatios(), seed=1).data_hash

    assert len({before, after, reseeded}) == 3


def _missing_root(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "missing", tmp_path / "missing"


def _no_class_folders(tmp_path: Path) -> tuple[Path, Path]:
    _fill(tmp_path / "images", 3, 0)
    return tmp_path, tmp_path


def _only_real(tmp_path: Path) -> tuple[Path, Path]:
    _fill(tmp_path / "REAL", 3, 0)
    return tmp_path, tmp_path / "FAKE"


def _empty_fake(tmp_path: Path) -> tuple[Path, Path]:
    _fill(tmp_path / "REAL", 3, 0)
    (tmp_path / "FAKE").mkdir()
    (tmp_path / "FAKE" / ".DS_Store").write_bytes(b"\0")
    return tmp_path, tmp_path / "FAKE"


def _unreadable_fake(tmp_path: Path) -> tuple[Path, Path]:
    _fill(tmp_path / "train" / "REAL", 3, 0)
    (tmp_path / "train" / "FAKE").mkdir(parents=True)
    (tmp_path / "train" / "FAKE" / "broken.png").write_text("nope")
    return tmp_path, tmp_path / "train" / "FAKE"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (_missing_root, "does not exist"),
        (_no_class_folders, "expected REAL/ and FAKE/ or train/REAL/, train/FAKE/"),
        (_only_real, "is missing"),
        (_empty_fake, "no readable images"),
        (_unreadable_fake, "no readable images"),
    ],
)
def test_unusable_folders_raise_a_one_line_error_naming_the_path(
    tmp_path: Path, build: Callable[[Path], tuple[Path, Path]], message: str
) -> None:
    root, named = build(tmp_path)

    with pytest.raises(AidetectorError, match=message) as error:
        ingest_image_folder(root, SIZE, SplitRatios(), seed=0)

    assert str(named) in str(error.value) and "\n" not in str(error.value)


def test_greyscale_palette_rgba_and_16bit_inputs_become_rgb_uint8(tmp_path: Path) -> None:
    root = _flat(tmp_path / "data", real=0, fake=3)
    (root / "REAL").mkdir()
    grey = np.random.default_rng(1).integers(0, 256, (3, 10, 12), dtype=np.uint8)
    Image.fromarray(grey[0]).save(root / "REAL" / "grey.png")
    Image.fromarray(_pixels(2, 10)).convert("P").save(root / "REAL" / "palette.png")
    rgba = np.dstack([_pixels(3, 10), np.full((10, 10), 128, np.uint8)])
    Image.fromarray(rgba).save(root / "REAL" / "alpha.png")
    Image.fromarray(grey[1].astype(np.uint16) * 200).save(root / "REAL" / "deep.png")
    (root / "REAL" / ".hidden.png").write_bytes(b"ignored")

    dataset = ingest_image_folder(root, 6, SplitRatios(0.5, 0.25, 0.25), seed=0)

    assert dataset.report.scanned["REAL"] == 4 and dataset.report.skipped_total == 0
    assert Image.open(root / "REAL" / "deep.png").mode.startswith("I")
    assert Image.open(root / "REAL" / "palette.png").mode == "P"
    for split in dataset.splits.values():
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (6, 6, 3)


def test_nested_files_are_kept_and_counted_under_their_first_subfolder_as_group(
    tmp_path: Path,
) -> None:
    root = _flat(tmp_path / "data", real=3, fake=3)
    _fill(root / "FAKE" / "sdxl" / "a" / "b", 2, 500)
    _fill(root / "FAKE" / "midjourney", 1, 600)
    # A folder named train inside a class folder is only a group, not the nested layout.
    _fill(root / "REAL" / "train", 2, 700)
    (root / "FAKE" / ".cache").mkdir()
    _save(root / "FAKE" / ".cache" / "hidden.png", _pixels(800))

    dataset = ingest_image_folder(root, SIZE, SplitRatios(), seed=0)

    report = dataset.report
    assert report.scanned == {"REAL": 5, "FAKE": 6} and report.skipped_total == 0
    assert report.groups == {
        "REAL": {"": 3, "train": 2},
        "FAKE": {"": 3, "midjourney": 1, "sdxl": 2},
    }
    group_of = {
        source: group
        for split in dataset.splits.values()
        for source, group in zip(split.sources, split.groups, strict=True)
    }
    assert group_of["FAKE/sdxl/a/b/img_001.png"] == "sdxl"
    assert group_of["REAL/train/img_000.png"] == "train"
    assert group_of["REAL/img_000.png"] == "" and group_of["FAKE/img_002.png"] == ""
    assert not any(".cache" in source for source in group_of)


def test_a_class_folder_with_images_only_in_subfolders_is_usable(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _fill(root / "REAL" / "camera_a", 4, 0)
    _fill(root / "FAKE" / "gan", 4, 100)

    dataset = ingest_image_folder(root, SIZE, SplitRatios(0.5, 0.25, 0.25), seed=0)

    assert dataset.report.kept == {"REAL": 4, "FAKE": 4}
    assert dataset.report.groups == {"REAL": {"camera_a": 4}, "FAKE": {"gan": 4}}


def test_symlinked_files_and_folders_are_not_followed_and_are_counted(tmp_path: Path) -> None:
    root = _flat(tmp_path / "data", real=4, fake=4)
    outside = tmp_path / "outside"
    _fill(outside, 3, 900)
    os.symlink(outside / "img_000.png", root / "REAL" / "linked.png")
    os.symlink(outside, root / "FAKE" / "linked_dir", target_is_directory=True)
    os.symlink(tmp_path / "nowhere.png", root / "FAKE" / "dangling.png")

    dataset = ingest_image_folder(root, SIZE, SplitRatios(0.5, 0.25, 0.25), seed=0)

    report = dataset.report
    assert report.kept == {"REAL": 4, "FAKE": 4}
    assert report.skipped["REAL"]["symlink"] == 1 and report.skipped["FAKE"]["symlink"] == 2
    assert report.scanned == {"REAL": 5, "FAKE": 6} and report.skipped_total == 3
    sources = [s for split in dataset.splits.values() for s in split.sources]
    assert not any("linked" in s or "dangling" in s for s in sources)


def test_manifest_records_group_and_native_size_not_the_resized_size(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for i in range(4):
        _save(root / "REAL" / f"r{i}.png", _pixels(i, 16 + i))
        _save(root / "FAKE" / "sdxl" / f"f{i}.png", _pixels(100 + i, 30))
    wide = np.random.default_rng(5).integers(0, 256, (12, 40, 3), dtype=np.uint8)
    _save(root / "FAKE" / "wide.png", wide)

    dataset = ingest_image_folder(root, SIZE, SplitRatios(0.5, 0.25, 0.25), seed=0)
    write_prepared(dataset, tmp_path / "out")

    with (tmp_path / "out" / "manifest.csv").open(newline="") as handle:
        rows = {row["source"]: row for row in csv.DictReader(handle)}
    assert (rows["FAKE/wide.png"]["width"], rows["FAKE/wide.png"]["height"]) == ("40", "12")
    assert rows["FAKE/wide.png"]["group"] == ""
    assert rows["FAKE/sdxl/f0.png"]["group"] == "sdxl"
    assert rows["REAL/r2.png"]["width"] == rows["REAL/r2.png"]["height"] == "18"
    train = dataset.splits["train"]
    assert train.images.shape[1:3] == (SIZE, SIZE)
    assert dataset.report.native_sizes == {
        "min_width": min(train.widths),
        "max_width": max(train.widths),
        "min_height": min(train.heights),
        "max_height": max(train.heights),
    }
    assert min(train.widths) > SIZE
    meta = read_split_meta(tmp_path / "out", "train")
    assert meta.sources == train.sources and meta.groups == train.groups
    assert meta.widths.tolist() == train.widths and meta.heights.tolist() == train.heights


def test_data_hash_of_a_flat_folder_keeps_its_original_recipe(tmp_path: Path) -> None:
    root = _flat(tmp_path / "data")

    dataset = ingest_image_folder(root, SIZE, SplitRatios(), seed=0)

    # The recipe from before groups and sizes existed, so existing data versions still match.
    expected = hashlib.sha256(f"image_size={SIZE}\n".encode())
    for split in ("train", "val", "test"):
        data = dataset.splits[split]
        for label, content_hash in zip(data.labels.tolist(), data.hashes, strict=True):
            expected.update(f"{split},{label},{content_hash}\n".encode())
    assert dataset.data_hash == expected.hexdigest()
    # Computed with the ingest code from before recursive folders, for this exact fixture.
    assert dataset.data_hash == FLAT_FIXTURE_HASH_BEFORE_GROUPS
    real = [
        hashlib.sha256(
            b"8x8\n" + Image.open(root / "REAL" / f"img_{i:03d}.png").convert("RGB").tobytes()
        ).hexdigest()
        for i in range(10)
    ]
    train = dataset.splits["train"]
    assert [h for h, lab in zip(train.hashes, train.labels, strict=True) if lab == 0] == [
        h for h in real if h in train.hashes
    ]


@pytest.mark.real_data
def test_ingests_a_cifake_sample_with_spaces_and_parentheses_in_names(tmp_path: Path) -> None:
    if not CIFAKE_TRAIN.is_dir():
        pytest.skip(f"CIFAKE sample not available at {CIFAKE_TRAIN}")
    root = tmp_path / "cifake"
    for name in ("REAL", "FAKE"):
        (root / name).mkdir(parents=True)
        for path in sorted((CIFAKE_TRAIN / name).iterdir())[:150]:
            shutil.copy(path, root / name / path.name)

    dataset = ingest_image_folder(root, 32, SplitRatios(), seed=0)

    report = dataset.report
    assert report.scanned == {"REAL": 150, "FAKE": 150} and report.skipped_total == 0
    removed = report.duplicates + report.label_conflicts
    assert sum(report.kept.values()) + removed == 300
    sources = [s for split in dataset.splits.values() for s in split.sources]
    assert any(" (" in s for s in sources)
    all_hashes = [h for hashes in _hashes(dataset).values() for h in hashes]
    assert len(all_hashes) == len(set(all_hashes))
    assert dataset.splits["train"].images.shape[1:] == (32, 32, 3)


def test_public_layouts_map_through_the_alias_table(tmp_path: Path) -> None:
    # ForenSynths names its folders 0_real/1_fake, GenImage nature/ai.
    for real, fake in (("0_real", "1_fake"), ("nature", "ai")):
        root = tmp_path / real
        _fill(root / real, 6, 0)
        _fill(root / fake, 6, 10_000)
        dataset = ingest_image_folder(root, SIZE, SplitRatios(), seed=0)
        assert dataset.classes == ("REAL", "FAKE")
        assert dataset.report.kept == {"REAL": 6, "FAKE": 6}
        labels = np.concatenate([s.labels for s in dataset.splits.values()])
        sources = [path for s in dataset.splits.values() for path in s.sources]
        fake_folders = {Path(p).parts[0] for p, y in zip(sources, labels, strict=True) if y == 1}
        assert fake_folders == {fake}


def test_the_configured_class_order_sets_the_label_indices(tmp_path: Path) -> None:
    root = _flat(tmp_path / "data", real=6, fake=4)
    dataset = ingest_image_folder(root, SIZE, SplitRatios(), seed=0, classes=["fake", "REAL"])
    assert dataset.classes == ("FAKE", "REAL")
    labels = np.concatenate([s.labels for s in dataset.splits.values()])
    assert np.bincount(labels).tolist() == [4, 6]  # label 0 is FAKE now
    write_prepared(dataset, tmp_path / "prepared")
    assert read_manifest(tmp_path / "prepared")["classes"] == ["FAKE", "REAL"]


def test_class_names_outside_the_alias_table_or_two_folders_for_one_class_are_refused(
    tmp_path: Path,
) -> None:
    root = _flat(tmp_path / "data", real=3, fake=3)
    with pytest.raises(AidetectorError, match="unknown class name 'cat'") as error:
        ingest_image_folder(root, SIZE, SplitRatios(), seed=0, classes=["REAL", "cat"])
    assert "\n" not in str(error.value)
    with pytest.raises(AidetectorError, match="REAL and FAKE once each"):
        ingest_image_folder(root, SIZE, SplitRatios(), seed=0, classes=["REAL", "real"])
    _fill(root / "0_real", 3, 500)
    with pytest.raises(AidetectorError, match="2 folders for class REAL: 0_real/, REAL/"):
        ingest_image_folder(root, SIZE, SplitRatios(), seed=0)


def test_files_over_the_byte_cap_are_skipped_unread_and_counted(tmp_path: Path) -> None:
    root = _flat(tmp_path / "data", real=4, fake=4)
    padded = io.BytesIO()
    Image.fromarray(_pixels(77, 64)).save(padded, format="PNG")
    (root / "FAKE" / "huge.png").write_bytes(padded.getvalue() + b"\0" * 4096)
    report = ingest_image_folder(
        root, SIZE, SplitRatios(0.5, 0.25, 0.25), seed=0, max_file_bytes=4096
    ).report
    assert report.skipped["FAKE"]["file_too_large"] == 1
    assert report.kept == {"REAL": 4, "FAKE": 4}
