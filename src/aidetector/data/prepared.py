"""The prepared (ingested) dataset: in-memory form, on-disk layout, and its data version hash.

On disk, out_dir holds {split}_images.npy (N, H, W, 3) uint8, {split}_labels.npy (N,) int64,
manifest.csv (one row per image: content hash, source path, source group and native size),
manifest.json (sizes, classes, data_hash) and report.json.

image_size is the side of the stored squares: the network input in resize mode, the
native-resolution store_size in crop mode (preprocessing.py), which manifest.json and
report.json then record as preprocessing_mode: crop (absent: resize).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aidetector.data.splits import SPLITS
from aidetector.errors import AidetectorError

MANIFEST_COLUMNS: tuple[str, ...] = (
    "split",
    "index",
    "label",
    "class",
    "sha256",
    "source",
    "group",
    "width",
    "height",
)
# Written for a native size that was not recorded, and read back for manifests that predate it.
UNKNOWN_SIZE = -1


@dataclass
class IngestReport:
    """What ingest saw and did; duplicate and conflict counts are numbers of files removed."""

    root: str
    image_size: int
    classes: list[str]
    scanned: dict[str, int]
    kept: dict[str, int]
    skipped: dict[str, dict[str, int]]
    skipped_total: int
    duplicates: int
    cross_split_duplicates: int
    label_conflicts: int
    split_counts: dict[str, dict[str, int]]
    source_has_test: bool
    seed: int
    ratios: dict[str, float]
    # Kept images per class and source group ("" for files directly in the class folder).
    groups: dict[str, dict[str, int]] = field(default_factory=dict)
    # min/max native width and height over the train split, before resizing.
    native_sizes: dict[str, int] = field(default_factory=dict)
    # What data.extra_roots added to the train split (extra.py's ExtraReport); {} without any.
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


@dataclass
class SplitData:
    """One split: images, labels, hashes, source paths, groups and native sizes, in one order.

    groups, widths and heights may be left empty when unknown; the manifest then records ""
    and UNKNOWN_SIZE.
    """

    images: np.ndarray
    labels: np.ndarray
    hashes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        """Return the number of images."""
        return len(self.labels)


@dataclass(frozen=True)
class SplitMeta:
    """Per-image facts of one split read back from manifest.csv, in index order."""

    hashes: list[str]
    sources: list[str]
    groups: list[str]
    widths: np.ndarray
    heights: np.ndarray

    def __len__(self) -> int:
        """Return the number of images."""
        return len(self.hashes)


@dataclass
class PreparedDataset:
    """Train/val/test splits of a validated, deduplicated, resized image folder."""

    splits: dict[str, SplitData]
    classes: tuple[str, ...]
    image_size: int
    report: IngestReport
    mode: str = "resize"

    @property
    def data_hash(self) -> str:
        """Return the data version: sha256 of image_size and the ordered (split, label, hash)."""
        return data_hash_of(
            self.image_size, {split: self.splits[split] for split in SPLITS}, self.mode
        )


def data_hash_of(image_size: int, splits: Mapping[str, SplitData], mode: str = "resize") -> str:
    """Return sha256 of image_size and every (split, label, content hash), in the given order.

    Groups, paths and native sizes are left out on purpose: the hash is the data version, and
    it must not change when only file names or metadata columns do. Crop mode's native
    squares are other pixels than resized ones of the same side, so it is in the hash (resize
    mode adds nothing, which keeps the hashes of data prepared before crop mode existed).
    """
    digest = hashlib.sha256(f"image_size={image_size}\n".encode())
    if mode != "resize":
        digest.update(f"preprocessing_mode={mode}\n".encode())
    for split, data in splits.items():
        for label, content_hash in zip(data.labels.tolist(), data.hashes, strict=True):
            digest.update(f"{split},{label},{content_hash}\n".encode())
    return digest.hexdigest()


def write_prepared(dataset: PreparedDataset, out_dir: Path) -> None:
    """Write the splits, manifests and report to out_dir; same dataset -> identical bytes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_hash = dataset.data_hash
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for split in SPLITS:
        data = dataset.splits[split]
        images = np.ascontiguousarray(data.images, dtype=np.uint8)
        write_npy(out_dir / f"{split}_images.npy", images)
        write_npy(out_dir / f"{split}_labels.npy", data.labels.astype(np.int64))
        writer.writerows(manifest_rows(split, data, dataset.classes))
    counts = {
        split: {
            name: int(np.sum(dataset.splits[split].labels == i))
            for i, name in enumerate(dataset.classes)
        }
        for split in SPLITS
    }
    manifest = {
        "image_size": dataset.image_size,
        "classes": list(dataset.classes),
        "data_hash": data_hash,
        "counts": counts,
        **mode_entry(dataset.mode),
    }
    report = {**dataset.report.to_dict(), **mode_entry(dataset.mode), "data_hash": data_hash}
    write_atomic(out_dir / "manifest.csv", rows.getvalue().encode())
    write_atomic(out_dir / "report.json", json_bytes(report))
    # Written last: a manifest.json means the files it describes are complete.
    write_atomic(out_dir / "manifest.json", json_bytes(manifest))


def mode_entry(mode: str) -> dict[str, str]:
    """Return the preprocessing_mode entry of a manifest or report: none for resize."""
    return {} if mode == "resize" else {"preprocessing_mode": mode}


def manifest_rows(split: str, data: SplitData, classes: tuple[str, ...]) -> list[list[Any]]:
    """Return the manifest.csv rows (MANIFEST_COLUMNS order) of one split."""
    count = len(data)
    groups = data.groups or [""] * count
    widths = data.widths or [UNKNOWN_SIZE] * count
    heights = data.heights or [UNKNOWN_SIZE] * count
    columns = zip(
        data.labels.tolist(), data.hashes, data.sources, groups, widths, heights, strict=True
    )
    return [
        [split, index, label, classes[label], content_hash, source, group, width, height]
        for index, (label, content_hash, source, group, width, height) in enumerate(columns)
    ]


def load_split(out_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (images memory-mapped read-only (N, H, W, 3) uint8, labels (N,) int64) of a split."""
    out_dir = Path(out_dir)
    if split not in SPLITS:
        raise AidetectorError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    return load_images_and_labels(
        out_dir / f"{split}_images.npy", out_dir / f"{split}_labels.npy", "the ingest step"
    )


def load_images_and_labels(
    image_path: Path, label_path: Path, step: str
) -> tuple[np.ndarray, np.ndarray]:
    """Return (images memory-mapped read-only, labels int64); step names what re-creates them."""
    for path in (image_path, label_path):
        if not path.is_file():
            raise AidetectorError(
                f"prepared data file {path} is missing: run {step} to create {path.parent}"
            )
    try:
        images = np.load(image_path, mmap_mode="r", allow_pickle=False)
        labels = np.load(label_path, allow_pickle=False).astype(np.int64, copy=False)
    except (OSError, ValueError) as error:
        raise AidetectorError(
            f"cannot read {image_path} or {label_path}: {error}; re-run {step}"
        ) from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise AidetectorError(
            f"{image_path} holds {images.dtype} {images.shape}, expected (N, H, W, 3) uint8: "
            f"re-run {step}"
        )
    if labels.shape != (images.shape[0],):
        raise AidetectorError(
            f"{label_path} has shape {labels.shape} but {image_path} has {images.shape[0]} "
            f"images: re-run {step}"
        )
    return images, labels


def read_split_meta(out_dir: Path, split: str) -> SplitMeta:
    """Return the hashes, sources, groups and native sizes of one split from manifest.csv.

    A manifest written before groups and sizes were recorded gives groups "" and sizes
    UNKNOWN_SIZE rather than failing.
    """
    path = Path(out_dir) / "manifest.csv"
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = set(reader.fieldnames or ())
            rows = [row for row in reader if row.get("split") == split]
    except FileNotFoundError:
        raise AidetectorError(
            f"{path} not found: run the ingest step to create {out_dir}"
        ) from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise AidetectorError(f"cannot read {path}: {error}; re-run the ingest step") from None
    missing = [c for c in ("split", "index", "sha256", "source") if c not in columns]
    if missing:
        raise AidetectorError(
            f"{path} lacks the column(s) {', '.join(missing)}: re-run the ingest step"
        )
    if not rows and split not in SPLITS:
        raise AidetectorError(f"{path} has no rows for split {split!r}: check the split name")
    try:
        rows.sort(key=lambda row: int(row["index"]))
        widths = [int(row.get("width") or UNKNOWN_SIZE) for row in rows]
        heights = [int(row.get("height") or UNKNOWN_SIZE) for row in rows]
    except ValueError as error:
        raise AidetectorError(
            f"{path} has a non-integer value: {error}; re-run the ingest step"
        ) from None
    if [int(row["index"]) for row in rows] != list(range(len(rows))):
        raise AidetectorError(
            f"{path} has gaps or repeats in the index of split {split!r}: re-run the ingest step"
        )
    return SplitMeta(
        hashes=[row["sha256"] for row in rows],
        sources=[row["source"] for row in rows],
        groups=[row.get("group") or "" for row in rows],
        widths=np.array(widths, dtype=np.int64),
        heights=np.array(heights, dtype=np.int64),
    )


def read_json_object(path: Path, step: str) -> dict[str, Any]:
    """Return a JSON object file, or an error that says to re-run `step`, which writes it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AidetectorError(f"{path} not found: run {step} to create it") from None
    except (OSError, ValueError) as error:
        raise AidetectorError(f"cannot read {path}: {error}; re-run {step}") from None
    if not isinstance(data, dict):
        raise AidetectorError(f"{path} is not a JSON object: re-run {step}")
    return data


def read_manifest(out_dir: Path) -> dict[str, Any]:
    """Return manifest.json of a prepared dataset (image_size, classes, data_hash, counts)."""
    return read_json_object(Path(out_dir) / "manifest.json", "the ingest step")


def write_npy(path: Path, array: np.ndarray) -> None:
    """Save an array as .npy (never pickled) via a temporary file, then move it into place."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)
    os.replace(temporary, path)


def json_bytes(data: dict[str, Any]) -> bytes:
    """Return indented JSON with a trailing newline."""
    return (json.dumps(data, indent=2) + "\n").encode()


def write_atomic(path: Path, data: bytes) -> None:
    """Write data to path via a temporary file so readers never see a half-written file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
