"""The feedback store: labelled images from /feedback, in the layout `prepare` reads.

    STORE/REAL/<sha256>.jpg                  one file per image, in its label's class folder
    STORE/FAKE/<sha256>.png
    STORE/manifest/<date>/<time>-<id>.jsonl  one manifest line per label received

STORE is a local folder or any fsspec URL (s3://bucket/feedback with s3fs installed, ...).
Class folders are the model's class_names. Nothing a client sends becomes part of a path:
the file name is the sha256 of the bytes (checked against the image_id), the extension comes
from the format Pillow read, and the folder is a validated class name. An image already in
its folder is never written again, so nothing is overwritten.

Each manifest line is an object of its own (one line, unique name) rather than an append to
one file: object stores have no append, and workers and replicas write concurrently.
`cat STORE/manifest/*/*.jsonl` is the whole manifest.

The same image labelled twice with different classes ends up in both class folders;
`prepare` drops such content as a label conflict and counts it.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from aidetector.errors import AidetectorError

MANIFEST_DIR = "manifest"
# Pillow format name -> file extension; serve.formats limits which can arrive at all.
EXTENSIONS = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "GIF": ".gif",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "TIFF": ".tif",
}


@dataclass(frozen=True)
class StoredFeedback:
    """Where a labelled image went (relative to the store), and whether it was new there."""

    path: str
    created: bool
    manifest: str


class FeedbackStore:
    """Writes labelled images and manifest lines under one folder or fsspec URL."""

    def __init__(self, url: str, class_names: tuple[str, ...]) -> None:
        if not url:
            raise AidetectorError("the feedback store needs a folder or an fsspec URL")
        try:
            self.fs, self.root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as error:  # unknown protocol, or its package missing
            raise AidetectorError(f"feedback_store {url!r}: {error}") from error
        self.url = url
        self.class_names = class_names

    def save(
        self,
        image_id: str,
        data: bytes,
        image_format: str,
        label: str,
        record: dict[str, Any],
    ) -> StoredFeedback:
        """Write the image into its label's folder (unless there) and one manifest line.

        record holds the other manifest fields (prediction, model_version, source ...).
        Raises AidetectorError for what the caller must have checked (a label outside
        class_names, bytes that are not image_id, a format without an extension), OSError
        when the store cannot be written.
        """
        if label not in self.class_names:
            raise AidetectorError(f"label {label!r} is not one of {self.class_names}")
        if len(image_id) != 64 or hashlib.sha256(data).hexdigest() != image_id:
            raise AidetectorError("image_id is not the sha256 of the image bytes")
        extension = EXTENSIONS.get(image_format)
        if extension is None:
            raise AidetectorError(f"no file extension for image format {image_format!r}")
        relative = f"{label}/{image_id}{extension}"
        created = self._write_new(posixpath.join(self.root, relative), data)
        now = datetime.now(UTC)
        line = {
            "image_id": image_id,
            "label": label,
            "path": relative,
            "timestamp": now.isoformat(timespec="milliseconds"),
            **record,
        }
        manifest = (
            f"{MANIFEST_DIR}/{now:%Y-%m-%d}/{now:%H%M%S%f}-{image_id[:16]}-"
            f"{uuid.uuid4().hex[:8]}.jsonl"
        )
        self._write(posixpath.join(self.root, manifest), (json.dumps(line) + "\n").encode())
        return StoredFeedback(relative, created, manifest)

    def _write_new(self, path: str, data: bytes) -> bool:
        """Write data to path unless a file is there already; return whether it was written."""
        if self.fs.exists(path):
            return False
        self._write(path, data)
        return True

    def _write(self, path: str, data: bytes) -> None:
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        if isinstance(self.fs, LocalFileSystem):
            # Written beside, then renamed: a reader (prepare) never sees half a file. The
            # temporary name is hidden, and `prepare` skips hidden files.
            temporary = posixpath.join(
                posixpath.dirname(path), f".{uuid.uuid4().hex}.{posixpath.basename(path)}.tmp"
            )
            self.fs.pipe_file(temporary, data)
            self.fs.mv(temporary, path)
        else:  # an object store's PUT is atomic already
            self.fs.pipe_file(path, data)


def read_manifest(url: str) -> list[dict[str, Any]]:
    """Return every manifest line of a store, oldest first (by file name)."""
    fs, root = fsspec.core.url_to_fs(url)
    paths = sorted(fs.glob(posixpath.join(root, MANIFEST_DIR, "*", "*.jsonl")))
    lines: list[dict[str, Any]] = []
    for path in paths:
        lines += [json.loads(line) for line in fs.cat_file(path).decode().splitlines() if line]
    return lines
