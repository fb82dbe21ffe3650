"""Ingest an image folder (CIFAKE/Kaggle layout) into validated, deduplicated, leak-free splits.

Accepted layouts, with one folder per class (default REAL and FAKE):

* ROOT/REAL, ROOT/FAKE: everything is split into train/val/test by the ratios;
* ROOT/train/{REAL,FAKE} and optionally ROOT/test/{REAL,FAKE}: a source test split is kept as
  the test split and train is split into train/val.

Every file is fully decoded with the serving path (open_rgb + resize_to_array); files that
cannot be decoded are skipped and counted. Duplicates are detected by a hash of the decoded
original pixels, so they are found across formats and file names, and no content hash ends up
in two splits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aidetector import CLASS_NAMES
from aidetector.data.decode import SKIP_REASONS, decode_file, strict_decoding
from aidetector.data.prepared import (
    IngestReport,
    PreparedDataset,
    SplitData,
    load_split,
    read_manifest,
    write_prepared,
)
from aidetector.data.splits import SPLITS, SplitRatios, assign_splits
from aidetector.errors import AidetectorError

__all__ = [
    "SKIP_REASONS",
    "IngestReport",
    "PreparedDataset",
    "SplitData",
    "SplitRatios",
    "ingest_image_folder",
    "load_split",
    "read_manifest",
    "write_prepared",
]

logger = logging.getLogger(__name__)

# Source test is read first so that, on a duplicate, the copy in the fixed test split wins.
_SOURCE_ORDER: tuple[str, str] = ("test", "train")


@dataclass
class _Record:
    """One decoded, resized image and where it came from."""

    source_split: str
    label: int
    source: str
    sha256: str
    pixels: np.ndarray


def ingest_image_folder(
    root: Path,
    image_size: int,
    ratios: SplitRatios,
    seed: int,
    classes: Sequence[str] = CLASS_NAMES,
) -> PreparedDataset:
    """Return the validated, deduplicated, resized and stratified splits of an image folder."""
    root = Path(root)
    classes = tuple(classes)
    if image_size < 1:
        raise AidetectorError(f"image_size must be a positive number of pixels, got {image_size}")
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise AidetectorError(f"need at least two distinct class names, got {list(classes)}")
    layout = _find_layout(root, classes)
    source_has_test = "test" in layout
    if not source_has_test and ratios.test <= 0:
        raise AidetectorError(
            f"split ratio test is 0 but {root} has no test/ folder: set a test ratio above 0"
        )
    records, scanned, skipped = _scan(root, layout, classes, image_size)
    kept_records, duplicates, cross_split, conflicts = _deduplicate(records)
    pool = [r for r in kept_records if r.source_split == "train"]
    labels = np.array([r.label for r in pool], dtype=np.int64)
    folders = [str(layout["train"][name]) for name in classes]
    indices = assign_splits(labels, folders, ratios, seed, source_has_test)
    chosen = {split: [pool[i] for i in indices[split]] for split in SPLITS}
    if source_has_test:
        chosen["test"] = [r for r in kept_records if r.source_split == "test"]
        for label, name in enumerate(classes):
            if not any(r.label == label for r in chosen["test"]):
                raise AidetectorError(
                    f"class folder {layout['test'][name]} has no usable images left after "
                    "removing label conflicts: add images to it"
                )
    splits = {split: _to_split_data(chosen[split], image_size) for split in SPLITS}
    report = IngestReport(
        root=str(root),
        image_size=image_size,
        classes=list(classes),
        scanned=scanned,
        kept={name: sum(r.label == i for r in kept_records) for i, name in enumerate(classes)},
        skipped=skipped,
        skipped_total=sum(sum(reasons.values()) for reasons in skipped.values()),
        duplicates=duplicates,
        cross_split_duplicates=cross_split,
        label_conflicts=conflicts,
        split_counts={
            split: {name: int(np.sum(splits[split].labels == i)) for i, name in enumerate(classes)}
            for split in SPLITS
        },
        source_has_test=source_has_test,
        seed=seed,
        ratios=ratios.to_dict(),
    )
    return PreparedDataset(splits=splits, classes=classes, image_size=image_size, report=report)


def _scan(
    root: Path, layout: dict[str, dict[str, Path]], classes: tuple[str, ...], image_size: int
) -> tuple[list[_Record], dict[str, int], dict[str, dict[str, int]]]:
    """Return (decoded records in priority order, files scanned per class, skips per reason)."""
    scanned = dict.fromkeys(classes, 0)
    skipped = {name: dict.fromkeys(SKIP_REASONS, 0) for name in classes}
    records: list[_Record] = []
    with strict_decoding():
        for source_split in (s for s in _SOURCE_ORDER if s in layout):
            for label, name in enumerate(classes):
                folder = layout[source_split][name]
                valid = 0
                for path in _list_files(folder):
                    scanned[name] += 1
                    result = decode_file(path, image_size)
                    if isinstance(result, str):
                        skipped[name][result] += 1
                        logger.warning("skipping %s: %s", path, result.replace("_", " "))
                        continue
                    pixels, content_hash = result
                    source = path.relative_to(root).as_posix()
                    records.append(_Record(source_split, label, source, content_hash, pixels))
                    valid += 1
                if valid == 0:
                    raise AidetectorError(
                        f"class folder {folder} has no readable images: add image files "
                        "(any format Pillow reads) directly inside it"
                    )
    return records, scanned, skipped


def _find_layout(root: Path, classes: tuple[str, ...]) -> dict[str, dict[str, Path]]:
    """Return the class folders per source split ("train", and "test" when present)."""
    if not root.exists():
        raise AidetectorError(f"data folder {root} does not exist: check the data path")
    if not root.is_dir():
        raise AidetectorError(f"data path {root} is not a folder: point it at the image folder")
    if (root / "train").is_dir():
        layout = {"train": _class_folders(root / "train", classes, "train/")}
        if (root / "test").is_dir():
            layout["test"] = _class_folders(root / "test", classes, "test/")
        return layout
    return {"train": _class_folders(root, classes, "")}


def _class_folders(folder: Path, classes: tuple[str, ...], prefix: str) -> dict[str, Path]:
    """Return one folder per class inside folder, matching names case-insensitively if needed."""
    subfolders = [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
    found: dict[str, Path] = {}
    for name in classes:
        exact = [p for p in subfolders if p.name == name]
        loose = [p for p in subfolders if p.name.lower() == name.lower()]
        match = exact or (loose if len(loose) == 1 else [])
        if match:
            found[name] = match[0]
    if not found:
        wanted = " and ".join(f"{c}/" for c in classes)
        nested = ", ".join(f"train/{c}/" for c in classes)
        hint = (
            f"{wanted} or {nested}"
            if not prefix
            else " and ".join(f"{prefix}{c}/" for c in classes)
        )
        raise AidetectorError(f"no class folders in {folder}: expected {hint}")
    missing = [name for name in classes if name not in found]
    if missing:
        present = ", ".join(f"{prefix}{name}/" for name in found)
        raise AidetectorError(
            f"class folder {folder / missing[0]} is missing (found {present}): every class "
            f"needs a folder: {', '.join(f'{prefix}{c}/' for c in classes)}"
        )
    return found


def _list_files(folder: Path) -> list[Path]:
    """Return the non-hidden files directly inside folder, sorted by name."""
    return sorted(
        (p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file()),
        key=lambda p: p.name,
    )


def _deduplicate(records: list[_Record]) -> tuple[list[_Record], int, int, int]:
    """Return (kept records, within-split duplicates, cross-split duplicates, label conflicts).

    Records must be in priority order; the first copy of each content hash is kept. Content
    found under two classes is dropped entirely, since neither label can be trusted.
    """
    labels_by_hash: dict[str, set[int]] = {}
    for record in records:
        labels_by_hash.setdefault(record.sha256, set()).add(record.label)
    kept: list[_Record] = []
    first_split: dict[str, str] = {}
    duplicates = cross_split = conflicts = 0
    for record in records:
        if len(labels_by_hash[record.sha256]) > 1:
            conflicts += 1
            logger.warning(
                "dropping %s: the same image is filed under another class", record.source
            )
        elif record.sha256 not in first_split:
            first_split[record.sha256] = record.source_split
            kept.append(record)
        elif first_split[record.sha256] == record.source_split:
            duplicates += 1
        else:
            cross_split += 1
    return kept, duplicates, cross_split, conflicts


def _to_split_data(records: list[_Record], image_size: int) -> SplitData:
    """Stack records into a SplitData."""
    images = (
        np.stack([r.pixels for r in records])
        if records
        else np.zeros((0, image_size, image_size, 3), dtype=np.uint8)
    )
    return SplitData(
        images=images,
        labels=np.array([r.label for r in records], dtype=np.int64),
        hashes=[r.sha256 for r in records],
        sources=[r.source for r in records],
    )
