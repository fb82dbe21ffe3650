"""What to score: files, folders (recursive) and fsspec URLs, listed in a stable order.

A local path is listed with os.walk and read with open(); anything with a `://` goes
through fsspec (s3://, gs://, file://, memory://, ...), whose filesystem packages and
credentials are the environment's (s3fs reads AWS_* variables or the instance role).
Hidden files and folders (a name starting with ".") inside a folder are left out, as the
training ingest does; a file named explicitly is always scored.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import fsspec

from aidetector.errors import AidetectorError, first_line

URL_MARK = "://"
# Below malloc's mmap threshold: read(n) allocates n bytes up front, and a 20 MB buffer
# for a 2 KB file tripled the cost of reading it (28 us against 7).
READ_CHUNK = 1 << 16


def is_url(source: str) -> bool:
    """Whether source names an fsspec URL rather than a local path."""
    return URL_MARK in source


def list_sources(sources: Sequence[str], limit: int | None = None) -> list[str]:
    """Return every file the sources name, each once, folders expanded in sorted order.

    Local files come back as absolute paths, URL sources as URLs of the same protocol.
    limit keeps the first `limit` files of that order, so a larger limit later extends the
    same selection. A source that does not exist is an error naming it.
    """
    if not sources:
        raise AidetectorError("name at least one file, folder or URL to score")
    files: dict[str, None] = {}
    for source in sources:
        for location in _list_url(source) if is_url(source) else _list_local(source):
            files.setdefault(location)
            if limit is not None and len(files) >= limit:
                return list(files)
    if not files:
        raise AidetectorError(f"no files to score in {', '.join(sources)}")
    return list(files)


def _not_found(source: str) -> AidetectorError:
    return AidetectorError(
        f"source {source} does not exist: give image files, folders or fsspec URLs "
        f"such as s3://bucket/prefix"
    )


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.replace("\\", "/").split("/"))


def _list_local(source: str) -> Iterator[str]:
    path = Path(source)
    if path.is_file():
        yield os.path.abspath(path)
        return
    if not path.is_dir():
        raise _not_found(source)
    root = os.path.abspath(path)
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield os.path.join(folder, name)


def _list_url(source: str) -> Iterator[str]:
    try:
        fs, root = fsspec.core.url_to_fs(source)
        if fs.isdir(root):
            found = sorted(fs.find(root))
            prefix = root.rstrip("/") + "/"
            paths = [p for p in found if not _hidden(p.removeprefix(prefix))]
        elif fs.isfile(root):
            paths = [root]
        else:
            raise _not_found(source)
    except AidetectorError:
        raise
    except Exception as error:  # unknown protocol, missing package, credentials, network
        raise AidetectorError(f"cannot list {source}: {first_line(error)}") from error
    for path in paths:
        yield fs.unstrip_protocol(path)


@dataclass(frozen=True)
class ReadFile:
    """A file's bytes (None when over the byte cap), content sha256 and size in bytes."""

    data: bytes | None
    sha256: str
    size: int


def read_source(location: str, max_bytes: int) -> ReadFile:
    """Read a listed file, keeping at most max_bytes of it; the hash always covers all of it.

    A file over the cap is hashed in chunks but not kept, so that its row still has a
    sha256 (and a rerun skips it). Raises OSError (or fsspec's errors) when it cannot be read.
    """
    handle = fsspec.open(location, "rb") if is_url(location) else open(location, "rb")  # noqa: SIM115
    with handle as stream:
        data = read_at_most(stream, max_bytes + 1)
        digest = hashlib.sha256(data)
        if len(data) <= max_bytes:
            return ReadFile(data, digest.hexdigest(), len(data))
        size = len(data)
        while chunk := stream.read(READ_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return ReadFile(None, digest.hexdigest(), size)


def read_at_most(stream: BinaryIO, limit: int) -> bytes:
    """Read a stream to its end or to limit bytes, whichever comes first, a chunk at a time."""
    data = bytearray()
    while len(data) < limit and (chunk := stream.read(min(READ_CHUNK, limit - len(data)))):
        data += chunk
    return bytes(data)
