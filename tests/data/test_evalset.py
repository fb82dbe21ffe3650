"""Tests for aidetector.data.evalset: named evaluation sets, their leaks and their storage."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aidetector.data.evalset import ingest_eval_folder, load_eval_set, write_eval_set
from aidetector.errors import AidetectorError

SIZE = 8
CLASSES = ("REAL", "FAKE")


def _pixels(seed: int, size: int = SIZE) -> np.ndarray:
    """Return a random RGB image; distinct seeds give distinct content."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _save(path: Path, pixels: np.ndarray) -> Path:
    """Save pixels as a PNG (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def _content_hash(path: Path) -> str:
    """Return the ingest content hash of a file: sha256 of its size line and RGB pixels."""
    image = Image.open(path).convert("RGB")
    return hashlib.sha256(f"{image.width}x{image.height}\n".encode() + image.tobytes()).hexdigest()


def _eval_folder(root: Path) -> Path:
    """Create ROOT/REAL (flat and one camera group) and ROOT/FAKE/{sdxl,gan} and return ROOT."""
    for i in range(3):
        _save(root / "REAL" / f"r{i}.png", _pixels(i, 12))
    _save(root / "REAL" / "canon" / "c0.png", _pixels(10, 20))
    for i in range(2):
        _save(root / "FAKE" / "sdxl" / "batch" / f"s{i}.png", _pixels(100 + i, 16))
        _save(root / "FAKE" / "gan" / f"g{i}.png", _pixels(200 + i, 10))
    return root


def test_eval_set_keeps_every_image_sorted_with_groups_and_resized(tmp_path: Path) -> None:
    eval_set = ingest_eval_folder("mixed", _eval_folder(tmp_path / "set"), SIZE, CLASSES, set())

    data = eval_set.data
    assert data.sources == [
        "REAL/canon/c0.png",
        "REAL/r0.png",
        "REAL/r1.png",
        "REAL/r2.png",
        "FAKE/gan/g0.png",
        "FAKE/gan/g1.png",
        "FAKE/sdxl/batch/s0.png",
        "FAKE/sdxl/batch/s1.png",
    ]
    assert data.groups == ["canon", "", "", "", "gan", "gan", "sdxl", "sdxl"]
    assert data.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert data.images.shape == (8, SIZE, SIZE, 3) and data.images.dtype == np.uint8
    assert data.widths == [20, 12, 12, 12, 10, 10, 16, 16]
    assert eval_set.report["groups"] == {"REAL": {"": 3, "canon": 1}, "FAKE": {"gan": 2, "sdxl": 2}}
    assert eval_set.report["overlap_with_training"] == 0


def test_duplicates_and_label_conflicts_inside_the_set_are_removed(tmp_path: Path) -> None:
    root = _eval_folder(tmp_path / "set")
    shutil.copy(root / "REAL" / "r0.png", root / "REAL" / "canon" / "r0 copy.png")
    shutil.copy(root / "REAL" / "r1.png", root / "FAKE" / "gan" / "stolen.png")

    eval_set = ingest_eval_folder("dups", root, SIZE, CLASSES, set())

    report = eval_set.report
    assert report["duplicates"] == 1 and report["label_conflicts"] == 2
    assert report["kept"] == {"REAL": 3, "FAKE": 4}
    assert len(set(eval_set.data.hashes)) == len(eval_set.data.hashes)
    assert "REAL/r1.png" not in eval_set.data.sources


def test_images_also_in_training_are_kept_counted_listed_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _eval_folder(tmp_path / "set")
    training = {_content_hash(root / "REAL" / "r2.png"), _content_hash(root / "FAKE/gan/g1.png")}
    training.add("0" * 64)

    with caplog.at_level(logging.WARNING, logger="aidetector.data.evalset"):
        eval_set = ingest_eval_folder("leaky", root, SIZE, CLASSES, training)

    report = eval_set.report
    assert len(eval_set.data) == 8
    assert report["overlap_with_training"] == 2
    assert report["overlap_examples"] == ["REAL/r2.png", "FAKE/gan/g1.png"]
    assert "'leaky' shares 2 image(s) with the training data" in caplog.text


def test_bad_files_are_skipped_and_counted_per_class_and_reason(tmp_path: Path) -> None:
    root = _eval_folder(tmp_path / "set")
    (root / "REAL" / "canon" / "notes.jpg").write_text("not an image")
    (root / "FAKE" / "sdxl" / "empty.png").write_bytes(b"")

    eval_set = ingest_eval_folder("bad", root, SIZE, CLASSES, set())

    report = eval_set.report
    assert report["scanned"] == {"REAL": 5, "FAKE": 5}
    assert report["skipped"]["REAL"]["not_an_image"] == 1
    assert report["skipped"]["FAKE"]["empty"] == 1
    assert report["skipped_total"] == 2 and len(eval_set.data) == 8


def test_write_then_load_round_trips_and_rewriting_gives_identical_bytes(tmp_path: Path) -> None:
    root = _eval_folder(tmp_path / "set")
    outputs = []
    for attempt in ("a", "b"):
        eval_set = ingest_eval_folder("mixed", root, SIZE, CLASSES, set())
        write_eval_set(eval_set, tmp_path / attempt)
        outputs.append({p.name: p.read_bytes() for p in sorted((tmp_path / attempt).iterdir())})

    assert outputs[0] == outputs[1]
    assert set(outputs[0]) == {"images.npy", "labels.npy", "manifest.csv", "report.json"}
    images, labels, meta, report = load_eval_set(tmp_path / "a")
    assert isinstance(images, np.memmap) and not images.flags.writeable
    np.testing.assert_array_equal(images, eval_set.data.images)
    np.testing.assert_array_equal(labels, eval_set.data.labels)
    assert meta.sources == eval_set.data.sources and meta.groups == eval_set.data.groups
    assert meta.widths.tolist() == eval_set.data.widths
    assert report["data_hash"] == eval_set.data_hash and report["name"] == "mixed"
    assert report["root"] == str(root)
    header = outputs[0]["manifest.csv"].decode().splitlines()[:2]
    assert header[0] == "split,index,label,class,sha256,source,group,width,height"
    assert header[1].startswith("eval,0,0,REAL,") and header[1].endswith(",canon,20,20")


def test_data_hash_follows_the_prepared_recipe_for_one_eval_split(tmp_path: Path) -> None:
    eval_set = ingest_eval_folder("mixed", _eval_folder(tmp_path / "set"), SIZE, CLASSES, set())

    expected = hashlib.sha256(f"image_size={SIZE}\n".encode())
    for label, content_hash in zip(
        eval_set.data.labels.tolist(), eval_set.data.hashes, strict=True
    ):
        expected.update(f"eval,{label},{content_hash}\n".encode())
    assert eval_set.data_hash == expected.hexdigest()


def test_loading_an_incomplete_eval_set_raises(tmp_path: Path) -> None:
    with pytest.raises(AidetectorError, match=r"report\.json not found: run `aidetector"):
        load_eval_set(tmp_path)
    write_eval_set(
        ingest_eval_folder("m", _eval_folder(tmp_path / "set"), SIZE, CLASSES, set()),
        tmp_path / "out",
    )
    (tmp_path / "out" / "labels.npy").unlink()
    with pytest.raises(AidetectorError, match="is missing"):
        load_eval_set(tmp_path / "out")


def test_a_missing_class_folder_raises_naming_it(tmp_path: Path) -> None:
    root = tmp_path / "set"
    _save(root / "REAL" / "r0.png", _pixels(0))

    with pytest.raises(AidetectorError, match="is missing") as error:
        ingest_eval_folder("half", root, SIZE, CLASSES, set())

    assert str(root / "FAKE") in str(error.value)


def test_a_class_left_without_usable_images_raises_naming_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "set"
    _save(root / "REAL" / "r0.png", _pixels(0))
    _save(root / "REAL" / "r1.png", _pixels(1))
    shutil.copy(root / "REAL" / "r0.png", _save(root / "FAKE" / "f.png", _pixels(2)))

    with pytest.raises(AidetectorError, match="no usable images") as error:
        ingest_eval_folder("conflicted", root, SIZE, CLASSES, set())

    assert str(root / "FAKE") in str(error.value)


def test_the_train_test_layout_is_refused_with_a_pointer_to_the_class_folders(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cifake"
    for split in ("train", "test"):
        _save(root / split / "REAL" / "r.png", _pixels(0))
        _save(root / split / "FAKE" / "f.png", _pixels(1))

    with pytest.raises(AidetectorError, match="point it at the folder that holds REAL/ and FAKE/"):
        ingest_eval_folder("cifake", root, SIZE, CLASSES, set())


def test_written_report_holds_the_native_size_range_of_the_set(tmp_path: Path) -> None:
    eval_set = ingest_eval_folder("mixed", _eval_folder(tmp_path / "set"), SIZE, CLASSES, set())
    write_eval_set(eval_set, tmp_path / "out")

    report = json.loads((tmp_path / "out" / "report.json").read_text())

    assert report["native_sizes"] == {
        "min_width": 10,
        "max_width": 20,
        "min_height": 10,
        "max_height": 20,
    }
    assert report["overlap_examples"] == []
