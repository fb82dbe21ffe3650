"""Ingest an image folder (CIFAKE/Kaggle layout) into validated, deduplicated, leak-free splits.

Accepted layouts, with one folder per class (REAL and FAKE, or an alias such as 0_real and
1_fake: labels.py), labelled in the order of `classes`:

* ROOT/REAL, ROOT/FAKE: everything is split into train/val/test by the ratios;
* ROOT/train/{REAL,FAKE} and optionally ROOT/test/{REAL,FAKE}: a source test split is kept as
  the test split and train is split into train/val.

Class folders are read recursively, with each image's source group (scan.py).

Images of `extra_roots` (the feedback store, extra.py) are added to the training split only,
after the main data is split, so they never change the validation or test split.

Every file is fully decoded with the serving path (open_rgb + preprocessing.image_to_array:
resized, or the native-resolution centre square in crop mode); files that cannot be decoded
are skipped and counted. Duplicates are detected by a hash of the decoded
original pixels, so they are found across formats and file names, and no content hash ends up
in two splits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aidetector.data.decode import MAX_FILE_BYTES
from aidetector.data.extra import collect_extra_images
from aidetector.data.prepared import IngestReport, PreparedDataset
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
from aidetector.data.splits import SPLITS, SplitRatios, assign_splits
from aidetector.errors import AidetectorError
from aidetector.labels import DEFAULT_ORDER

logger = logging.getLogger(__name__)

# Source test is read first so that, on a duplicate, the copy in the fixed test split wins.
_SOURCE_ORDER: tuple[str, str] = ("test", "train")


def ingest_image_folder(
    root: Path,
    image_size: int,
    ratios: SplitRatios,
    seed: int,
    classes: Sequence[str] = DEFAULT_ORDER,
    max_file_bytes: int = MAX_FILE_BYTES,
    extra_roots: Sequence[str] = (),
    mode: str = "resize",
) -> PreparedDataset:
    """Return the validated, deduplicated, resized and stratified splits of an image folder,
    with the new images of extra_roots added to the training split.

    image_size is the side of the stored squares; mode says how they are made (resize, or
    crop: the native-resolution centre square, preprocessing.py).
    """
    root = Path(root)
    classes = check_image_size_and_classes(image_size, classes)
    layout = _find_layout(root, classes)
    source_has_test = "test" in layout
    if not source_has_test and ratios.test <= 0:
        raise AidetectorError(
            f"split ratio test is 0 but {root} has no test/ folder: set a test ratio above 0"
        )
    layout_by_priority = {s: layout[s] for s in _SOURCE_ORDER if s in layout}
    scan = scan_class_folders(
        root, layout_by_priority, classes, image_size, max_file_bytes, mode=mode
    )
    kept_records, duplicates, cross_split, conflicts = deduplicate(scan.records)
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
    extra = (
        collect_extra_images(
            extra_roots, classes, image_size, scan.records, max_file_bytes, mode=mode
        )
        if extra_roots
        else None
    )
    if extra is not None:
        chosen["train"] = chosen["train"] + extra.records
    splits = {split: to_split_data(chosen[split], image_size) for split in SPLITS}
    report = IngestReport(
        root=str(root),
        image_size=image_size,
        classes=list(classes),
        scanned=scan.scanned,
        kept={name: sum(r.label == i for r in kept_records) for i, name in enumerate(classes)},
        skipped=scan.skipped,
        skipped_total=scan.skipped_total,
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
        groups=count_groups(kept_records, classes),
        native_sizes=native_size_range(splits["train"]),
        extra=extra.report.to_dict() if extra is not None else {},
    )
    return PreparedDataset(
        splits=splits, classes=classes, image_size=image_size, report=report, mode=mode
    )


def _find_layout(root: Path, classes: tuple[str, ...]) -> dict[str, dict[str, Path]]:
    """Return the class folders per source split ("train", and "test" when present)."""
    check_data_folder(root)
    if (root / "train").is_dir():
        layout = {"train": class_folders(root / "train", classes, "train/")}
        if (root / "test").is_dir():
            layout["test"] = class_folders(root / "test", classes, "test/")
        return layout
    return {"train": class_folders(root, classes, "")}
