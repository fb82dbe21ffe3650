"""Named evaluation sets: extra REAL/FAKE folders, validated and deduplicated like the ingest.

An evaluation set is ROOT/{REAL,FAKE}/... read recursively with source groups (see ingest.py),
kept whole as one split named "eval". Images that also appear in the training data are kept,
since the set is what the user chose to measure, but they are counted and listed in the report
so a leak is never silent.

On disk, out_dir holds images.npy (N, H, W, 3) uint8, labels.npy (N,) int64, manifest.csv
(MANIFEST_COLUMNS, split "eval") and report.json (with name, root and data_hash).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aidetector.data.decode import MAX_FILE_BYTES
from aidetector.data.prepared import (
    MANIFEST_COLUMNS,
    SplitData,
    SplitMeta,
    data_hash_of,
    json_bytes,
    load_images_and_labels,
    manifest_rows,
    mode_entry,
    read_json_object,
    read_split_meta,
    write_atomic,
    write_npy,
)
from aidetector.data.scan import (
    check_data_folder,
    check_image_size_and_classes,
    class_folders,
    count_groups,
    deduplicate,
    native_size_range,
    scan_class_folders,
    to_split_data,
)
from aidetector.errors import AidetectorError
from aidetector.labels import ClassOrder, match_class_folders

EVAL_SPLIT = "eval"
MAX_OVERLAP_EXAMPLES = 20
_STEP = "`aidetector prepare-set` (the prepare_set stage)"

logger = logging.getLogger(__name__)


@dataclass
class EvalSet:
    """One named evaluation set: every kept image of a REAL/FAKE folder, in sorted order."""

    name: str
    data: SplitData
    classes: tuple[str, ...]
    image_size: int
    report: dict[str, Any]
    mode: str = "resize"

    @property
    def data_hash(self) -> str:
        """Return the set's version: the prepared data hash recipe over one split, "eval"."""
        return data_hash_of(self.image_size, {EVAL_SPLIT: self.data}, self.mode)


def ingest_eval_folder(
    name: str,
    root: Path,
    image_size: int,
    classes: Sequence[str],
    training_hashes: set[str],
    max_file_bytes: int = MAX_FILE_BYTES,
    mode: str = "resize",
) -> EvalSet:
    """Return the validated, deduplicated, resized evaluation set in root ({REAL,FAKE}/...).

    image_size and mode: as for the training data (ingest_image_folder).

    training_hashes are the content hashes of the training data: matching images are kept but
    counted in report["overlap_with_training"] and logged as a warning.
    """
    root = Path(root)
    classes = check_image_size_and_classes(image_size, classes)
    if not name or name.startswith(".") or Path(name).name != name:
        raise AidetectorError(
            f"evaluation set name {name!r} is not usable: give a plain folder-like name "
            "such as 'genimage_sdxl'"
        )
    folders = _eval_class_folders(root, classes)
    scan = scan_class_folders(
        root, {EVAL_SPLIT: folders}, classes, image_size, max_file_bytes, mode=mode
    )
    kept, duplicates, _, conflicts = deduplicate(scan.records)
    for label, class_name in enumerate(classes):
        if not any(record.label == label for record in kept):
            raise AidetectorError(
                f"class folder {folders[class_name]} of evaluation set {name!r} has no usable "
                "images left after removing label conflicts: add images to it"
            )
    overlap = [record.source for record in kept if record.sha256 in training_hashes]
    if overlap:
        logger.warning(
            "evaluation set %r shares %d image(s) with the training data, e.g. %s: its "
            "scores overstate how the model does on unseen images",
            name,
            len(overlap),
            ", ".join(overlap[:3]),
        )
    data = to_split_data(kept, image_size)
    report: dict[str, Any] = {
        "name": name,
        "root": str(root),
        "image_size": image_size,
        **mode_entry(mode),
        "classes": list(classes),
        "scanned": scan.scanned,
        "kept": {c: sum(r.label == i for r in kept) for i, c in enumerate(classes)},
        "skipped": scan.skipped,
        "skipped_total": scan.skipped_total,
        "duplicates": duplicates,
        "label_conflicts": conflicts,
        "groups": count_groups(kept, classes),
        "native_sizes": native_size_range(data),
        "overlap_with_training": len(overlap),
        "overlap_examples": overlap[:MAX_OVERLAP_EXAMPLES],
    }
    return EvalSet(
        name=name, data=data, classes=classes, image_size=image_size, report=report, mode=mode
    )


def write_eval_set(eval_set: EvalSet, out_dir: Path) -> None:
    """Write the set's images, labels, manifest and report to out_dir; same set -> same bytes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = eval_set.data
    write_npy(out_dir / "images.npy", np.ascontiguousarray(data.images, dtype=np.uint8))
    write_npy(out_dir / "labels.npy", data.labels.astype(np.int64))
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    writer.writerows(manifest_rows(EVAL_SPLIT, data, eval_set.classes))
    write_atomic(out_dir / "manifest.csv", rows.getvalue().encode())
    report = {
        **eval_set.report,
        "name": eval_set.name,
        "data_hash": eval_set.data_hash,
    }
    # Written last: a report.json means the files it describes are complete.
    write_atomic(out_dir / "report.json", json_bytes(report))


def load_eval_set(out_dir: Path) -> tuple[np.ndarray, np.ndarray, SplitMeta, dict[str, Any]]:
    """Return (images memory-mapped read-only, labels int64, per-image meta, report) of a set."""
    out_dir = Path(out_dir)
    report = read_json_object(out_dir / "report.json", _STEP)
    images, labels = load_images_and_labels(out_dir / "images.npy", out_dir / "labels.npy", _STEP)
    meta = read_split_meta(out_dir, EVAL_SPLIT)
    if len(meta) != len(labels):
        raise AidetectorError(
            f"{out_dir / 'manifest.csv'} lists {len(meta)} images but {out_dir / 'labels.npy'} "
            f"has {len(labels)}: re-run {_STEP}"
        )
    return images, labels, meta, report


def _eval_class_folders(root: Path, classes: tuple[str, ...]) -> dict[str, Path]:
    """Return root's class folders; the train/ and test/ layout of a training folder is refused."""
    check_data_folder(root)
    wanted = " and ".join(f"{c}/" for c in classes)
    subfolders = [p.name for p in root.iterdir() if p.is_dir()]
    has_class_folder = any(match_class_folders(subfolders, ClassOrder.from_names(classes)).values())
    if not has_class_folder and ((root / "train").is_dir() or (root / "test").is_dir()):
        raise AidetectorError(
            f"evaluation set folder {root} has the train/ test/ layout of a training folder: "
            f"point it at the folder that holds {wanted} (e.g. {root / 'test'})"
        )
    return class_folders(root, classes, "", allow_nested=False)
