"""Tests for aidetector.data.prepared: the on-disk prepared dataset and its data hash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aidetector.data.prepared import (
    IngestReport,
    PreparedDataset,
    SplitData,
    load_split,
    read_manifest,
    read_split_meta,
    write_prepared,
)
from aidetector.errors import AidetectorError


def _dataset(first_label: int = 0) -> PreparedDataset:
    """Return a tiny hand-made dataset with 3/1/1 images per split."""
    rng = np.random.default_rng(0)
    splits = {}
    for split, n in (("train", 3), ("val", 1), ("test", 1)):
        labels = np.array([first_label] + [1] * (n - 1), dtype=np.int64)
        splits[split] = SplitData(
            images=rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8),
            labels=labels,
            hashes=[f"{split}{i}" * 8 for i in range(n)],
            sources=[f"REAL/a, b ({i}).png" for i in range(n)],
            groups=["" if i == 0 else f"gen {i}" for i in range(n)],
            widths=[10 + i for i in range(n)],
            heights=[20 + i for i in range(n)],
        )
    counts = {s: {"REAL": 0, "FAKE": len(d)} for s, d in splits.items()}
    report = IngestReport("root", 4, ["REAL", "FAKE"], {}, {}, {}, 0, 0, 0, 0, counts, False, 0, {})
    return PreparedDataset(splits=splits, classes=("REAL", "FAKE"), image_size=4, report=report)


def test_load_split_returns_memory_mapped_uint8_images_and_int64_labels(tmp_path: Path) -> None:
    dataset = _dataset()
    write_prepared(dataset, tmp_path / "out")

    images, labels = load_split(tmp_path / "out", "train")

    assert isinstance(images, np.memmap) and not images.flags.writeable
    assert images.dtype == np.uint8 and images.shape == (3, 4, 4, 3)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images, dataset.splits["train"].images)
    np.testing.assert_array_equal(labels, dataset.splits["train"].labels)


def test_manifests_agree_and_csv_quotes_commas_in_source_paths(tmp_path: Path) -> None:
    dataset = _dataset()
    write_prepared(dataset, tmp_path)

    manifest = read_manifest(tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    lines = (tmp_path / "manifest.csv").read_text().splitlines()

    assert manifest["data_hash"] == report["data_hash"] == dataset.data_hash
    assert manifest["classes"] == ["REAL", "FAKE"] and manifest["image_size"] == 4
    assert lines[0] == "split,index,label,class,sha256,source,group,width,height"
    assert len(lines) == 6
    assert lines[1].endswith(',"REAL/a, b (0).png",,10,20')
    assert lines[2].endswith(',"REAL/a, b (1).png",gen 1,11,21')
    assert not list(tmp_path.glob(".*.tmp"))


def test_data_hash_changes_with_labels_but_not_with_paths() -> None:
    base = _dataset()
    renamed = _dataset()
    renamed.splits["train"].sources = ["x.png"] * 3

    assert base.data_hash == renamed.data_hash
    assert base.data_hash != _dataset(first_label=1).data_hash


def test_missing_or_mismatched_prepared_files_raise(tmp_path: Path) -> None:
    with pytest.raises(AidetectorError, match="missing: run the ingest step"):
        load_split(tmp_path, "train")
    with pytest.raises(AidetectorError, match="not found"):
        read_manifest(tmp_path)
    with pytest.raises(AidetectorError, match="unknown split"):
        load_split(tmp_path, "holdout")
    write_prepared(_dataset(), tmp_path)
    np.save(tmp_path / "val_labels.npy", np.zeros(5, dtype=np.int64))
    with pytest.raises(AidetectorError, match="re-run the ingest step"):
        load_split(tmp_path, "val")


def test_read_split_meta_returns_each_split_in_index_order(tmp_path: Path) -> None:
    dataset = _dataset()
    write_prepared(dataset, tmp_path)

    for split, data in dataset.splits.items():
        meta = read_split_meta(tmp_path, split)

        assert meta.hashes == data.hashes and meta.sources == data.sources
        assert meta.groups == data.groups
        assert meta.widths.dtype == np.int64 and meta.widths.tolist() == data.widths
        assert meta.heights.dtype == np.int64 and meta.heights.tolist() == data.heights


def test_split_data_without_groups_or_sizes_is_written_as_unknown(tmp_path: Path) -> None:
    dataset = _dataset()
    for data in dataset.splits.values():
        data.groups, data.widths, data.heights = [], [], []
    write_prepared(dataset, tmp_path)

    meta = read_split_meta(tmp_path, "train")

    assert meta.groups == ["", "", ""]
    assert meta.widths.tolist() == [-1, -1, -1] and meta.heights.tolist() == [-1, -1, -1]


def test_manifest_from_before_groups_and_sizes_reads_as_unknown(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text(
        "split,index,label,class,sha256,source\n"
        "val,0,0,REAL,aa,REAL/x.png\n"
        "train,1,1,FAKE,cc,FAKE/z.png\n"
        "train,0,0,REAL,bb,REAL/y.png\n"
    )

    meta = read_split_meta(tmp_path, "train")

    assert meta.hashes == ["bb", "cc"] and meta.sources == ["REAL/y.png", "FAKE/z.png"]
    assert meta.groups == ["", ""]
    assert meta.widths.tolist() == [-1, -1] and meta.heights.tolist() == [-1, -1]


def test_read_split_meta_without_a_manifest_or_with_gaps_raises(tmp_path: Path) -> None:
    with pytest.raises(AidetectorError, match=r"manifest\.csv not found: run the ingest step"):
        read_split_meta(tmp_path, "train")
    (tmp_path / "manifest.csv").write_text(
        "split,index,label,class,sha256,source\ntrain,1,0,REAL,aa,REAL/x.png\n"
    )
    with pytest.raises(AidetectorError, match="gaps or repeats"):
        read_split_meta(tmp_path, "train")


def test_crop_mode_is_in_the_data_hash_and_the_manifest(tmp_path: Path) -> None:
    resize, crop = _dataset(), _dataset()
    crop.mode = "crop"
    assert resize.data_hash != crop.data_hash
    write_prepared(crop, tmp_path)
    assert read_manifest(tmp_path)["preprocessing_mode"] == "crop"
    write_prepared(resize, tmp_path)
    assert "preprocessing_mode" not in read_manifest(tmp_path)  # resize writes what it did
