"""Scanning class folders into decoded, deduplicated image records: shared by the training
ingest (ingest.py) and the evaluation sets (evalset.py).

Class folders are read recursively. The first subfolder under a class folder is the image's
source group (one per generator or camera, as in GenImage and ForenSynths: FAKE/sdxl/a/b.jpg is
in group "sdxl"); files directly in the class folder are in group "". Symlinks inside a class
folder are never followed: they are skipped and counted. Hidden files and folders are ignored.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aidetector.data.decode import MAX_FILE_BYTES, decode_file, strict_decoding
from aidetector.data.decode import SKIP_REASONS as DECODE_SKIP_REASONS
from aidetector.data.prepared import UNKNOWN_SIZE, SplitData
from aidetector.errors import AidetectorError
from aidetector.labels import FOLDER_ALIASES, ClassOrder, match_class_folders

logger = logging.getLogger(__name__)

# Why a scanned file was not kept: the decoder's reasons, plus symlinks found by the walk.
SKIP_REASONS: tuple[str, ...] = (*DECODE_SKIP_REASONS, "symlink")


@dataclass
class ImageRecord:
    """One decoded image (its stored square) and where it came from."""

    source_split: str
    label: int
    source: str
    group: str
    sha256: str
    pixels: np.ndarray
    width: int
    height: int


@dataclass
class FolderScan:
    """Decoded records in priority order, files scanned per class and skips per class and reason."""

    records: list[ImageRecord]
    scanned: dict[str, int]
    skipped: dict[str, dict[str, int]]

    @property
    def skipped_total(self) -> int:
        """Return the number of skipped files over all classes and reasons."""
        return sum(sum(reasons.values()) for reasons in self.skipped.values())


def check_image_size_and_classes(image_size: int, classes: Sequence[str]) -> tuple[str, ...]:
    """Return the class names in label order, mapped through the alias table (labels.py)."""
    if image_size < 1:
        raise AidetectorError(f"image_size must be a positive number of pixels, got {image_size}")
    return ClassOrder.from_names(classes).names


def scan_class_folders(
    root: Path,
    layout: dict[str, dict[str, Path]],
    classes: tuple[str, ...],
    image_size: int,
    max_file_bytes: int = MAX_FILE_BYTES,
    require_every_class: bool = True,
    mode: str = "resize",
) -> FolderScan:
    """Decode every file under the class folders, in layout order then class order.

    layout maps a source split to its folder per class; its order is the priority order that
    deduplicate() relies on. Files over max_file_bytes are skipped unread; mode and image_size
    say how pixels are stored (decode_file). Raises when a class folder yields no readable
    image, unless require_every_class is False: then a class may have no folder or no images
    (extra roots, which add to a dataset).
    """
    scanned = dict.fromkeys(classes, 0)
    skipped = {name: dict.fromkeys(SKIP_REASONS, 0) for name in classes}
    records: list[ImageRecord] = []
    with strict_decoding():
        for source_split, folders in layout.items():
            for label, name in enumerate(classes):
                if name not in folders and not require_every_class:
                    continue
                folder = folders[name]
                files, symlinks = _walk_class_folder(folder)
                for link in symlinks:
                    scanned[name] += 1
                    skipped[name]["symlink"] += 1
                    logger.warning("skipping %s: symlinks are not followed", link)
                valid = 0
                for path in files:
                    scanned[name] += 1
                    result = decode_file(path, image_size, max_file_bytes, mode)
                    if isinstance(result, str):
                        skipped[name][result] += 1
                        logger.warning("skipping %s: %s", path, result.replace("_", " "))
                        continue
                    parts = path.relative_to(folder).parts
                    record = ImageRecord(
                        source_split=source_split,
                        label=label,
                        source=path.relative_to(root).as_posix(),
                        group=parts[0] if len(parts) > 1 else "",
                        sha256=result.sha256,
                        pixels=result.pixels,
                        width=result.width,
                        height=result.height,
                    )
                    records.append(record)
                    valid += 1
                if valid == 0 and require_every_class:
                    raise AidetectorError(
                        f"class folder {folder} has no readable images: add image files "
                        "(any format Pillow reads) inside it or its subfolders"
                    )
    return FolderScan(records=records, scanned=scanned, skipped=skipped)


def _walk_class_folder(folder: Path) -> tuple[list[Path], list[Path]]:
    """Return (regular files, symlinks) under folder, each sorted by relative posix path.

    Hidden files and folders are left out silently. Symlinks, to files or folders, are listed
    but never followed, so a link cannot pull in images from outside the data folder or loop.
    folder itself may be a symlink (a data folder mounted elsewhere); only what is inside it is
    held to this rule.
    """

    def refuse(error: OSError) -> None:
        raise AidetectorError(
            f"cannot read folder {error.filename}: {error.strerror}; fix its permissions"
        )

    files: list[Path] = []
    symlinks: list[Path] = []
    for current, dirnames, filenames in os.walk(folder, onerror=refuse, followlinks=False):
        here = Path(current)
        kept_dirs = []
        for dirname in dirnames:
            if dirname.startswith("."):
                continue
            if (here / dirname).is_symlink():
                symlinks.append(here / dirname)
            else:
                kept_dirs.append(dirname)
        dirnames[:] = sorted(kept_dirs)  # os.walk descends only into what is left here
        for filename in filenames:
            path = here / filename
            if filename.startswith("."):
                continue
            if path.is_symlink():
                symlinks.append(path)
            elif path.is_file():
                files.append(path)

    def by_relative_path(path: Path) -> str:
        return path.relative_to(folder).as_posix()

    return sorted(files, key=by_relative_path), sorted(symlinks, key=by_relative_path)


def check_data_folder(root: Path) -> None:
    """Raise unless root is an existing folder."""
    if not root.exists():
        raise AidetectorError(f"data folder {root} does not exist: check the data path")
    if not root.is_dir():
        raise AidetectorError(f"data path {root} is not a folder: point it at the image folder")


def class_folders(
    folder: Path, classes: tuple[str, ...], prefix: str = "", allow_nested: bool = True
) -> dict[str, Path]:
    """Return one folder per class inside folder, by class name or alias, in any letter case.

    prefix is how folder is shown in messages; allow_nested=False leaves the train/ layout
    out of the hint when no class folder is found.
    """
    subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    matches = match_class_folders(subfolders, ClassOrder.from_names(classes))
    for name, names in matches.items():
        if len(names) > 1:
            raise AidetectorError(
                f"{folder} has {len(names)} folders for class {name}: "
                f"{', '.join(f'{prefix}{n}/' for n in names)}; keep one"
            )
    found = {name: folder / names[0] for name, names in matches.items() if names}
    if not found:
        wanted = " and ".join(f"{c}/" for c in classes)
        nested = ", ".join(f"train/{c}/" for c in classes)
        if prefix:
            hint = " and ".join(f"{prefix}{c}/" for c in classes)
        else:
            hint = f"{wanted} or {nested}" if allow_nested else wanted
        aliases = "; ".join(f"{c}: {', '.join(FOLDER_ALIASES[c])}" for c in classes)
        raise AidetectorError(
            f"no class folders in {folder}: expected {hint} (or an alias, {aliases})"
        )
    missing = [name for name in classes if name not in found]
    if missing:
        present = ", ".join(f"{prefix}{path.name}/" for path in found.values())
        raise AidetectorError(
            f"class folder {folder / missing[0]} is missing (found {present}): every class "
            f"needs a folder: {', '.join(f'{prefix}{c}/' for c in classes)}"
        )
    return found


def deduplicate(records: list[ImageRecord]) -> tuple[list[ImageRecord], int, int, int]:
    """Return (kept records, within-split duplicates, cross-split duplicates, label conflicts).

    Records must be in priority order; the first copy of each content hash is kept. Content
    found under two classes is dropped entirely, since neither label can be trusted.
    """
    labels_by_hash: dict[str, set[int]] = {}
    for record in records:
        labels_by_hash.setdefault(record.sha256, set()).add(record.label)
    kept: list[ImageRecord] = []
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


def count_groups(records: list[ImageRecord], classes: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Return the number of records per class name and source group, groups sorted by name."""
    counts: dict[str, dict[str, int]] = {name: {} for name in classes}
    for record in records:
        per_group = counts[classes[record.label]]
        per_group[record.group] = per_group.get(record.group, 0) + 1
    return {name: dict(sorted(per_group.items())) for name, per_group in counts.items()}


def native_size_range(data: SplitData) -> dict[str, int]:
    """Return min/max native width and height of a split; UNKNOWN_SIZE when it has none."""
    if not data.widths or not data.heights:
        return dict.fromkeys(("min_width", "max_width", "min_height", "max_height"), UNKNOWN_SIZE)
    return {
        "min_width": min(data.widths),
        "max_width": max(data.widths),
        "min_height": min(data.heights),
        "max_height": max(data.heights),
    }


def to_split_data(records: list[ImageRecord], image_size: int) -> SplitData:
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
        groups=[r.group for r in records],
        widths=[r.width for r in records],
        heights=[r.height for r in records],
    )
