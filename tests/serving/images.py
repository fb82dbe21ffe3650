"""Images for the serving tests: ones to convert, and a corpus of bad and hostile inputs."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    """Return image encoded as fmt."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


# (width, height) of the test photos; the tiny test models were "trained" on this size.
TRAINING_SIZE = (48, 40)


def photo(seed: int, size: tuple[int, int] = TRAINING_SIZE) -> Image.Image:
    """A random RGB image (width, height)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def unique_jpeg(index: int) -> bytes:
    """A JPEG no other index produces (so it misses the cache)."""
    return encode(photo(10_000 + index), "JPEG", quality=90)


def oversized_jpeg(index: int, scale: int = 8) -> bytes:
    """A noise JPEG scale times the training size per side: out of domain by its size."""
    width, height = TRAINING_SIZE
    return encode(photo(20_000 + index, (width * scale, height * scale)), "JPEG", quality=90)


def black_png(index: int = 0) -> bytes:
    """A black PNG of the training size, nothing like noise: out of domain by its features.

    index varies one pixel, so that each index has its own bytes (and cache key).
    """
    image = Image.new("RGB", TRAINING_SIZE)
    image.putpixel((0, 0), (index % 256, index // 256 % 256, 0))
    return encode(image, "PNG")


def convertible_images() -> dict[str, bytes]:
    """Images the service must convert rather than reject, by name."""
    base = photo(1)
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(base.size))
    frames = [photo(2), photo(3)]
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    sixteen = Image.fromarray(
        (np.random.default_rng(4).integers(0, 65535, (40, 48))).astype(np.uint16)
    )
    return {
        "jpeg": encode(base, "JPEG", quality=92),
        "png": encode(base, "PNG"),
        "cmyk_jpeg": encode(base.convert("CMYK"), "JPEG"),
        "png_16bit": encode(sixteen, "PNG"),
        "palette_png": encode(base.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "rgba_png": encode(rgba, "PNG"),
        "greyscale_jpeg": encode(base.convert("L"), "JPEG"),
        "animated_gif": encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "exif_rotated_jpeg": encode(photo(5, (64, 32)), "JPEG", exif=exif),
        "webp": encode(base, "WEBP", lossless=True),
        "tiff": encode(base, "TIFF"),
        "bmp": encode(base, "BMP"),
    }


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_header(width: int, height: int, rows: bytes = b"") -> bytes:
    """A PNG whose IHDR declares width x height, followed by the given (deflated) rows."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(rows or b"\x00" * 64, 9))
        + _png_chunk(b"IEND", b"")
    )


def zero_png(width: int, height: int) -> bytes:
    """A valid all-black PNG: tiny on disk, width x height pixels once decoded."""
    row = b"\x00" + b"\x00" * (3 * width)
    return png_with_header(width, height, row * height)


BOUNDARY = "testboundary"
RAW = {"Content-Type": "application/octet-stream"}
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def multipart(files: list[tuple[str, bytes]], boundary: str = BOUNDARY) -> bytes:
    """A multipart/form-data body with one part per (field, bytes)."""
    parts = []
    for index, (name, data) in enumerate(files):
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="f{index}.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


@dataclass
class BadInput:
    """One hostile or broken request and the status it must get."""

    name: str
    path: str
    status: int
    kwargs: dict[str, Any] = field(default_factory=dict)


def bad_inputs(settings: dict[str, Any]) -> list[BadInput]:
    """Every bad-input case, given the server's serve settings."""
    good = encode(photo(7), "JPEG")
    png = encode(photo(8), "PNG")
    corrupt = bytearray(good)
    corrupt[2:40] = b"\x13" * 38  # the markers after SOI
    bad_crc = bytearray(png)
    bad_crc[29] ^= 0xFF  # inside IHDR: its CRC no longer matches
    over_cap = int(settings["max_pixels"] ** 0.5) + 100
    at_cap = int(settings["max_pixels"] ** 0.5)
    # Header-only PNGs at the cap (their pixel data would not decode): a 413 shows that the
    # request's budget was checked from the headers alone.
    over_budget = [("files", png_with_header(at_cap, at_cap))] * (
        settings["max_request_pixels"] // at_cap**2 + 1
    )
    raw = {"headers": {"Content-Type": "application/octet-stream"}}
    too_many = [("files", good)] * (settings["max_batch_images"] + 1)
    mp = {"Content-Type": "multipart/form-data; boundary=testboundary"}

    def chunks() -> Iterator[bytes]:
        for _ in range(settings["max_bytes"] // 65536 + 2):
            yield b"\x00" * 65536

    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    return [
        BadInput("empty body", "/predict", 400, {"data": b"", **raw}),
        BadInput("text, not an image", "/predict", 400, {"data": b"hello world", **raw}),
        BadInput("json body", "/predict", 400, {"json": {"image": "x"}}),
        BadInput("truncated jpeg", "/predict", 400, {"data": good[: len(good) // 2], **raw}),
        BadInput("truncated png", "/predict", 400, {"data": png[: len(png) // 2], **raw}),
        BadInput("corrupt jpeg header", "/predict", 400, {"data": bytes(corrupt), **raw}),
        BadInput("png with a bad crc", "/predict", 400, {"data": bytes(bad_crc), **raw}),
        BadInput("postscript (format not allowed)", "/predict", 400, {"data": eps, **raw}),
        BadInput("bomb: 100000x100000 png", "/predict", 413,
                 {"data": png_with_header(100_000, 100_000), **raw}),
        BadInput("bomb: 65535x65535 gif", "/predict", 413,
                 {"data": b"GIF89a\xff\xff\xff\xff\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01"
                          b"\x00\x00\x02\x02D\x01\x00;", **raw}),
        BadInput("over the pixel cap", "/predict", 413,
                 {"data": zero_png(over_cap, over_cap), **raw}),
        BadInput("over the pixel budget of a request", "/predict_batch", 413,
                 {"data": multipart(over_budget), "headers": mp}),
        BadInput("over the byte cap", "/predict", 413,
                 {"data": b"\xff" * (settings["max_bytes"] + 1), **raw}),
        BadInput("over the byte cap, chunked", "/predict", 413, {"data": chunks(), **raw}),
        BadInput("multipart over the byte cap", "/predict", 413,
                 {"files": {"file": ("big.jpg", b"\xff" * (settings["max_bytes"] + 1))}}),
        BadInput("two files to /predict", "/predict", 422,
                 {"files": [("file", ("a.jpg", good)), ("file", ("b.jpg", good))]}),
        BadInput("multipart without a file", "/predict", 400, {"data": {"note": "no file"}}),
        BadInput("malformed multipart", "/predict", 400,
                 {"data": b"--nope\r\ngarbage", "headers": mp}),
        BadInput("too many images", "/predict_batch", 422,
                 {"data": multipart(too_many), "headers": mp}),
        BadInput("batch with one corrupt image", "/predict_batch", 400,
                 {"data": multipart([("files", good), ("files", bytes(corrupt))]), "headers": mp}),
        BadInput("batch as raw bytes", "/predict_batch", 400, {"data": good, **raw}),
        BadInput("feedback: not json", "/feedback", 400, {"data": b"{nope"}),
        BadInput("feedback: nested 1000 deep", "/feedback", 400, {"data": b"[" * 1000}),
        BadInput("feedback: not utf-8", "/feedback", 400,
                 {"data": b'{"image_id": "\xc3\x28", "label": "REAL"}'}),
        BadInput("feedback: wrong types", "/feedback", 400,
                 {"json": {"image_id": 12, "label": ["REAL"]}}),
        BadInput("feedback: a list", "/feedback", 400, {"json": ["a" * 64, "REAL"]}),
        BadInput("feedback: over its byte cap", "/feedback", 413,
                 {"json": {"image_id": "a" * 64, "label": "REAL", "pad": "x" * 5000}}),
        BadInput("feedback: bad label", "/feedback", 400,
                 {"json": {"image_id": "a" * 64, "label": "MAYBE"}}),
        BadInput("feedback: unknown image id", "/feedback", 404,
                 {"json": {"image_id": "0" * 64, "label": "REAL"}}),
    ]  # fmt: skip
