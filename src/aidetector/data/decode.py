"""Strict decoding of one image file: its pixels, content hash and size, or why it was skipped."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from aidetector.preprocessing import (
    ImageTooLargeError,
    check_upscaled_size,
    decode_rgb,
    image_to_array,
    open_image,
)

# Files above this are skipped unread (data.max_file_bytes); the largest camera JPEGs and
# generator PNGs are a few tens of MiB.
MAX_FILE_BYTES = 100 * 1024 * 1024
SKIP_REASONS: tuple[str, ...] = (
    "empty",
    "file_too_large",
    "not_an_image",
    "corrupt_or_truncated",
    "too_large",
    "unreadable",
)
_IMAGE_SIGNATURES: tuple[bytes, ...] = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"RIFF",  # WebP
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
)


@dataclass(frozen=True)
class DecodedImage:
    """A decoded file: its stored pixels, content hash and native size of the original."""

    pixels: np.ndarray
    sha256: str
    width: int
    height: int


@contextmanager
def strict_decoding() -> Iterator[None]:
    """Within the block, truncated images fail and decompression-bomb warnings raise."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def decode_file(
    path: Path, image_size: int, max_bytes: int = MAX_FILE_BYTES, mode: str = "resize"
) -> DecodedImage | str:
    """Return the stored pixels, sha256 and size of the original RGB image, or why to skip it.

    The pixels are an image_size square made as the preprocessing mode says (resized, or the
    native-resolution centre square in crop mode: preprocessing.image_to_array). The size is
    the decoded original's (EXIF orientation applied). A file over max_bytes is skipped
    before a byte of it is read.

    Call it inside strict_decoding(), which makes truncated files and decompression bombs fail.
    """
    try:
        if path.stat().st_size > max_bytes:
            return "file_too_large"
        data = path.read_bytes()
    except OSError:
        return "unreadable"
    if not data:
        return "empty"
    try:
        opened = open_image(data)
        if mode == "crop":
            # A thin image is upscaled until its short side is image_size: refuse the ones
            # that would pass Pillow's bomb limit at that size, before decoding them.
            check_upscaled_size(opened.width, opened.height, image_size, Image.MAX_IMAGE_PIXELS)
        image = decode_rgb(opened)
    except (
        ImageTooLargeError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        MemoryError,
    ):
        return "too_large"
    except UnidentifiedImageError:
        # A cut-off header is unidentifiable too; the magic bytes tell it from a non-image.
        return "corrupt_or_truncated" if data.startswith(_IMAGE_SIGNATURES) else "not_an_image"
    # Pillow's decoders raise many exception types on malformed data; all mean a bad file.
    except Exception:
        return "corrupt_or_truncated"
    digest = hashlib.sha256(f"{image.width}x{image.height}\n".encode())
    digest.update(image.tobytes())
    return DecodedImage(
        pixels=image_to_array(image, mode, image_size),
        sha256=digest.hexdigest(),
        width=image.width,
        height=image.height,
    )
