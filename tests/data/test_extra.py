"""data.extra_roots: extra images (the feedback store) join the training split only,
deduplicated against the data and among themselves, and counted in the prepare report."""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image

from aidetector.cli import main
from aidetector.data.ingest import ingest_image_folder
from aidetector.data.prepared import read_split_meta
from aidetector.data.splits import SPLITS, SplitRatios
from aidetector.errors import AidetectorError

SIZE = 8
RATIOS = SplitRatios(0.5, 0.25, 0.25)


def pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def save(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels(seed)).save(path, format="PNG")
    return path


def main_data(root: Path, per_class: int = 8) -> Path:
    for i in range(per_class):
        save(root / "REAL" / f"r{i}.png", i)
        save(root / "FAKE" / f"f{i}.png", 1000 + i)
    return root


def sources(dataset: object, split: str) -> list[str]:
    return dataset.splits[split].sources  # type: ignore[attr-defined]


def test_new_images_join_train_only_and_the_other_splits_do_not_move(tmp_path: Path) -> None:
    data = main_data(tmp_path / "data")
    store = tmp_path / "feedback"
    save(store / "FAKE" / "a.png", 5000)
    save(store / "REAL" / "b.png", 5001)
    save(store / "REAL" / "c.png", 5002)
    (store / "manifest").mkdir()
    (store / "manifest" / "x.jsonl").write_text("{}\n")  # not a class folder: ignored

    before = ingest_image_folder(data, SIZE, RATIOS, seed=0)
    after = ingest_image_folder(data, SIZE, RATIOS, seed=0, extra_roots=[str(store)])

    for split in ("val", "test"):
        assert after.splits[split].hashes == before.splits[split].hashes
    added = [s for s in sources(after, "train") if s.startswith(str(store))]
    assert sorted(added) == sorted(
        f"{store}/{p}" for p in ("FAKE/a.png", "REAL/b.png", "REAL/c.png")
    )
    report = after.report
    assert report.extra["added_to_train"] == {"REAL": 2, "FAKE": 1}
    assert report.extra["scanned"] == {"REAL": 2, "FAKE": 1}
    assert report.split_counts["train"] == {
        name: before.report.split_counts["train"][name] + n
        for name, n in (("REAL", 2), ("FAKE", 1))
    }
    assert after.data_hash != before.data_hash  # a new data version
    assert before.report.extra == {}


def test_an_image_already_in_the_data_never_moves_and_is_counted(tmp_path: Path) -> None:
    data = main_data(tmp_path / "data")
    prepared = ingest_image_folder(data, SIZE, RATIOS, seed=0)
    test_source = prepared.splits["test"].sources[0]
    label = prepared.classes[int(prepared.splits["test"].labels[0])]
    other = "FAKE" if label == "REAL" else "REAL"
    store = tmp_path / "feedback"
    # A test image sent back as feedback, with the same label and with the other one.
    (store / label).mkdir(parents=True)
    (store / label / "same.png").write_bytes((data / test_source).read_bytes())
    (store / other).mkdir(parents=True)
    (store / other / "relabelled.png").write_bytes((data / test_source).read_bytes())

    merged = ingest_image_folder(data, SIZE, RATIOS, seed=0, extra_roots=[str(store)])

    for split in SPLITS:
        assert merged.splits[split].hashes == prepared.splits[split].hashes
    assert merged.report.extra["in_data"] == 1
    assert merged.report.extra["label_conflicts_with_data"] == 1
    assert merged.report.extra["added_to_train"] == {"REAL": 0, "FAKE": 0}


def test_extra_duplicates_and_conflicting_labels_are_dropped(tmp_path: Path) -> None:
    data = main_data(tmp_path / "data")
    store = tmp_path / "feedback"
    save(store / "REAL" / "one.png", 7000)
    save(store / "REAL" / "one_again.png", 7000)  # same content, other name
    save(store / "REAL" / "disputed.png", 7001)
    save(store / "FAKE" / "disputed.png", 7001)  # two reviewers disagree
    second = tmp_path / "more"
    save(second / "real" / "one.png", 7000)  # an alias folder in a second root

    merged = ingest_image_folder(data, SIZE, RATIOS, seed=0, extra_roots=[str(store), str(second)])

    extra = merged.report.extra
    assert (extra["duplicates"], extra["label_conflicts"]) == (2, 2)
    assert extra["added_to_train"] == {"REAL": 1, "FAKE": 0}


def test_a_store_with_one_class_or_none_yet_is_fine_but_a_missing_root_is_not(
    tmp_path: Path,
) -> None:
    data = main_data(tmp_path / "data")
    (tmp_path / "empty").mkdir()
    save(tmp_path / "half" / "FAKE" / "x.png", 8000)
    merged = ingest_image_folder(
        data, SIZE, RATIOS, seed=0, extra_roots=[str(tmp_path / "empty"), str(tmp_path / "half")]
    )
    assert merged.report.extra["added_to_train"] == {"REAL": 0, "FAKE": 1}
    with pytest.raises(AidetectorError, match=r"data\.extra_roots: .*nowhere is not a folder"):
        ingest_image_folder(data, SIZE, RATIOS, seed=0, extra_roots=[str(tmp_path / "nowhere")])


def test_an_fsspec_url_is_downloaded_and_merged(tmp_path: Path) -> None:
    data = main_data(tmp_path / "data")
    fs = fsspec.filesystem("memory")
    for name, seed in (("REAL/m1.png", 9000), ("FAKE/m2.png", 9001)):
        fs.pipe(f"/store-test/{name}", save(tmp_path / "tmp" / name, seed).read_bytes())
    fs.pipe("/store-test/manifest/2026-01-01/x.jsonl", b"{}\n")
    try:
        merged = ingest_image_folder(
            data, SIZE, RATIOS, seed=0, extra_roots=["memory://store-test"]
        )
    finally:
        fs.rm("/store-test", recursive=True)
    assert merged.report.extra["added_to_train"] == {"REAL": 1, "FAKE": 1}
    added = [s for s in sources(merged, "train") if s.startswith("memory://")]
    assert sorted(added) == ["memory://store-test/FAKE/m2.png", "memory://store-test/REAL/m1.png"]


def test_prepare_merges_the_configured_roots_and_reports_them(
    tmp_path: Path, in_project_root: Path
) -> None:
    data = main_data(tmp_path / "data")
    save(tmp_path / "feedback" / "FAKE" / "new.png", 9500)
    prepared = tmp_path / "prepared"

    code = main(
        [
            "prepare",
            "data=folder",
            f"data.root={data}",
            f"data.image_size={SIZE}",
            f"data.extra_roots=[{tmp_path / 'feedback'}]",
            f"paths.prepared={prepared}",
        ]
    )

    assert code == 0
    report = json.loads((prepared / "report.json").read_text())
    assert report["extra"]["added_to_train"] == {"REAL": 0, "FAKE": 1}
    train = read_split_meta(prepared, "train").sources
    assert f"{tmp_path / 'feedback'}/FAKE/new.png" in train
    for split in ("val", "test"):
        assert not any("feedback" in s for s in read_split_meta(prepared, split).sources)
