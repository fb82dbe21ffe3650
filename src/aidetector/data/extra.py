"""Extra image roots merged into the training split: `data.extra_roots`, e.g. the feedback
store that /feedback writes (serving/feedback_store.py).

Each root holds class folders (REAL/, FAKE/ or their aliases) and may lack one, or be empty:
a feedback store fills up one label at a time. A root is a local folder or any fsspec URL
(s3://bucket/feedback with s3fs installed), which is downloaded first. The images are
decoded like the main data, then:

* dropped when their content is already in the main data, in any split: the main data's
  label and split win, so nothing moves into or out of the test split;
* deduplicated among themselves; content filed under two classes (an image labelled REAL by
  one reviewer and FAKE by another) is dropped as a label conflict;
* added to the training split only, never to validation or test.

The prepare report's `extra` section counts each step.
"""

from __future__ import annotations

import posixpath
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from aidetector.data.decode import MAX_FILE_BYTES
from aidetector.data.scan import ImageRecord, deduplicate, scan_class_folders
from aidetector.errors import AidetectorError
from aidetector.labels import ClassOrder, match_class_folders

EXTRA_SPLIT = "extra"


@dataclass
class ExtraReport:
    """What merging the extra roots saw and did; counts are files."""

    roots: list[str]
    scanned: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    # Content already in the main data with the same label, or with the other one.
    in_data: int = 0
    label_conflicts_with_data: int = 0
    duplicates: int = 0
    label_conflicts: int = 0
    # Added to the training split, per class.
    added_to_train: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


@dataclass
class ExtraImages:
    """The records to add to the training split, and the report of how they were chosen."""

    records: list[ImageRecord]
    report: ExtraReport


@contextmanager
def local_root(url: str) -> Iterator[Path]:
    """Yield a local folder with the root's content: itself, or a download of its class folders."""
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as error:  # unknown protocol, or its package missing
        raise AidetectorError(f"data.extra_roots: {url!r}: {error}") from error
    if isinstance(fs, LocalFileSystem):
        folder = Path(path)
        if not folder.is_dir():
            raise AidetectorError(
                f"data.extra_roots: {url} is not a folder: create it (an empty folder adds "
                "nothing) or remove it from data.extra_roots"
            )
        yield folder
        return
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        entries = []
    except OSError as error:
        raise AidetectorError(f"data.extra_roots: cannot list {url}: {error}") from error
    folders = [
        posixpath.basename(e["name"].rstrip("/")) for e in entries if e["type"] == "directory"
    ]
    with tempfile.TemporaryDirectory(prefix="aidetector-extra-") as staging:
        for name in folders:
            if name.startswith(".") or name == "manifest":
                continue
            try:
                fs.get(posixpath.join(path, name) + "/", f"{staging}/{name}/", recursive=True)
            except OSError as error:
                raise AidetectorError(
                    f"data.extra_roots: cannot download {url}/{name}: {error}"
                ) from error
        yield Path(staging)


def extra_class_folders(root: Path, classes: tuple[str, ...], shown: str) -> dict[str, Path]:
    """Return the class folders present in root (by name or alias); none is fine."""
    subfolders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    found = {}
    for name, names in match_class_folders(subfolders, ClassOrder.from_names(classes)).items():
        if len(names) > 1:
            raise AidetectorError(
                f"{shown} has {len(names)} folders for class {name}: {', '.join(names)}; keep one"
            )
        if names:
            found[name] = root / names[0]
    return found


def collect_extra_images(
    roots: Sequence[str],
    classes: tuple[str, ...],
    image_size: int,
    main_records: Sequence[ImageRecord],
    max_file_bytes: int = MAX_FILE_BYTES,
    mode: str = "resize",
) -> ExtraImages:
    """Return the extra roots' images that are new to the main data, deduplicated, with a report.

    main_records are every record scanned from the main data, before its own deduplication;
    mode stores the pixels as the main data's are (resized, or native crop squares).
    """
    report = ExtraReport(
        roots=list(roots),
        scanned=dict.fromkeys(classes, 0),
        skipped={},
        added_to_train=dict.fromkeys(classes, 0),
    )
    labels_in_data: dict[str, set[int]] = {}
    for record in main_records:
        labels_in_data.setdefault(record.sha256, set()).add(record.label)
    new: list[ImageRecord] = []
    with ExitStack() as stack:
        for url in roots:
            root = stack.enter_context(local_root(url))
            folders = extra_class_folders(root, classes, url)
            if not folders:
                continue
            scan = scan_class_folders(
                root,
                {EXTRA_SPLIT: folders},
                classes,
                image_size,
                max_file_bytes,
                require_every_class=False,
                mode=mode,
            )
            for name in classes:
                report.scanned[name] += scan.scanned.get(name, 0)
                reasons = report.skipped.setdefault(name, {})
                for reason, count in scan.skipped.get(name, {}).items():
                    reasons[reason] = reasons.get(reason, 0) + count
            for record in scan.records:
                record.source = posixpath.join(url.rstrip("/"), record.source)
                known = labels_in_data.get(record.sha256)
                if known is None:
                    new.append(record)
                elif known == {record.label}:
                    report.in_data += 1
                else:
                    report.label_conflicts_with_data += 1
    kept, report.duplicates, _, report.label_conflicts = deduplicate(new)
    for record in kept:
        report.added_to_train[classes[record.label]] += 1
    return ExtraImages(kept, report)
