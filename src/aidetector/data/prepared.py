"""The prepared (ingested) dataset: in-memory form, on-disk layout, and its data version hash.

On disk, out_dir holds {split}_images.npy (N, H, W, 3) uint8, {split}_labels.npy (N,) int64,
manifest.csv (one row per image), manifest.json (sizes, classes, data_hash) and report.json.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aidetector.data.splits import SPLITS
from aidetector.errors import AidetectorError

MANIFEST_COLUMNS: tuple[str, ...] = ("split", "index", "label", "class", "sha256", "source")


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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


@dataclass
class SplitData:
    """One split: images, labels, content hashes and source paths, all in the same order."""

    images: np.ndarray
    labels: np.ndarray
    hashes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        """Return the number of images."""
        return len(self.labels)


@dataclass
class PreparedDataset:
    """Train/val/test splits of a validated, deduplicated, resized image folder."""

    splits: dict[str, SplitData]
    classes: tuple[str, ...]
    image_size: int
    report: IngestReport

    @property
    def data_hash(self) -> str:
        """Return the data version: sha256 of image_size and the ordered (split, label, hash)."""
        digest = hashlib.sha256(f"image_size={self.image_size}\n".encode())
        for split in SPLITS:
            data = self.splits[split]
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
        _write_npy(out_dir / f"{split}_images.npy", images)
        _write_npy(out_dir / f"{split}_labels.npy", data.labels.astype(np.int64))
        for index, (label, content_hash, source) in enumerate(
            zip(data.labels.tolist(), data.hashes, data.sources, strict=True)
        ):
            writer.writerow([split, index, label, dataset.classes[label], content_hash, source])
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
    }
    report = {**dataset.report.to_dict(), "data_hash": data_hash}
    _write_atomic(out_dir / "manifest.csv", rows.getvalue().encode())
    _write_atomic(out_dir / "report.json", _json_bytes(report))
    # Written last: a manifest.json means the files it describes are complete.
    _write_atomic(out_dir / "manifest.json", _json_bytes(manifest))


def load_split(out_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (images memory-mapped read-only (N, H, W, 3) uint8, labels (N,) int64) of a split."""
    out_dir = Path(out_dir)
    if split not in SPLITS:
        raise AidetectorError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    image_path = out_dir / f"{split}_images.npy"
    label_path = out_dir / f"{split}_labels.npy"
    for path in (image_path, label_path):
        if not path.is_file():
            raise AidetectorError(
                f"prepared data file {path} is missing: run the ingest step to create {out_dir}"
            )
    try:
        images = np.load(image_path, mmap_mode="r", allow_pickle=False)
        labels = np.load(label_path, allow_pickle=False).astype(np.int64, copy=False)
    except (OSError, ValueError) as error:
        raise AidetectorError(f"cannot read prepared split {split} in {out_dir}: {error}") from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise AidetectorError(
            f"{image_path} holds {images.dtype} {images.shape}, expected (N, H, W, 3) uint8: "
            "re-run the ingest step"
        )
    if labels.shape != (images.shape[0],):
        raise AidetectorError(
            f"{label_path} has shape {labels.shape} but {image_path} has {images.shape[0]} "
            "images: re-run the ingest step"
        )
    return images, labels


def read_manifest(out_dir: Path) -> dict[str, Any]:
    """Return manifest.json of a prepared dataset (image_size, classes, data_hash, counts)."""
    path = Path(out_dir) / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AidetectorError(
            f"{path} not found: run the ingest step to create {out_dir}"
        ) from None
    except (OSError, ValueError) as error:
        raise AidetectorError(f"cannot read {path}: {error}; re-run the ingest step") from None
    if not isinstance(manifest, dict):
        raise AidetectorError(f"{path} is not a JSON object: re-run the ingest step")
    return manifest


def _write_npy(path: Path, array: np.ndarray) -> None:
    """Save an array as .npy (never pickled) via a temporary file, then move it into place."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as handle:
        np.save(handle, array, allow_pickle=False)
    os.replace(temporary, path)


def _json_bytes(data: dict[str, Any]) -> bytes:
    """Return indented JSON with a trailing newline."""
    return (json.dumps(data, indent=2) + "\n").encode()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write data to path via a temporary file so readers never see a half-written file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
