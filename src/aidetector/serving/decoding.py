"""Decoding uploads into model inputs through the shared preprocessing, or a 4xx.

The second step of a request (limits.py reads it, this decodes it, verdicts.py predicts):
every header is parsed within the pixel caps (per image and per request) and the format
list before any image is decoded, then each image goes through the same `preprocessing`
code as training and evaluation, one at a time: only the small stored square is kept (the
resized input, or in crop mode the native-resolution centre square the crops come from),
and each full-size frame is released before the next is decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import anyio.to_thread
import numpy as np
from PIL import Image, UnidentifiedImageError

from aidetector.config.serve import ServeSettings
from aidetector.preprocessing import ImageTooLargeError, Preprocessing, decode_rgb
from aidetector.serving.limits import RequestRejected, Upload

# Images up to this many pixels decode on the event loop; larger ones go to a thread so
# that one big (or hostile but within-limits) image cannot stall every other request.
INLINE_DECODE_PIXELS = 512 * 512
# Pillow allocates a frame in blocks of 16 MiB by default. glibc serves blocks that size from
# its heap once a few have been freed (its mmap threshold adapts, up to 32 MiB), and keeps
# them after the frame is freed: one 50 Mpx RGBA decode left the process 384 MB larger.
# Blocks over 32 MiB are always mmapped, so a released frame goes back to the system.
PILLOW_BLOCK_BYTES = 64 * 1024 * 1024
Image.core.set_block_size(PILLOW_BLOCK_BYTES)


@dataclass(frozen=True)
class DecodedUploads:
    """Stored squares, uint8 (N, S, S, 3), and each upload's native (width, height).

    In resize mode the squares are the model inputs; in crop mode each becomes
    preprocessing.crops_per_image inputs (Preprocessing.inference_inputs).
    """

    arrays: np.ndarray
    sizes: list[tuple[int, int]]


def open_upload(
    upload: Upload, settings: ServeSettings, preprocessing: Preprocessing
) -> Image.Image:
    """Parse an upload's header within the pixel cap (at the size the model's preprocessing
    takes it to) and the format list, or reject it."""
    try:
        image = preprocessing.open(upload.data, settings.max_pixels, settings.formats)
    except (ImageTooLargeError, Image.DecompressionBombError) as error:
        raise RequestRejected(
            413, "too_many_pixels", f"{upload.describe()}: {error}. Send a smaller image"
        ) from error
    except UnidentifiedImageError as error:
        raise RequestRejected(
            400,
            "not_an_image",
            f"{upload.describe()} is not an image in an accepted format "
            f"({', '.join(settings.formats)})",
        ) from error
    except Exception as error:  # any parser failure on untrusted bytes is the input's fault
        raise _corrupt(upload, error) from error
    return image


def _corrupt(upload: Upload, error: Exception) -> RequestRejected:
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return RequestRejected(
        400,
        "corrupt_image",
        f"{upload.describe()} could not be decoded ({detail}); "
        f"the file may be truncated or corrupt",
    )


def decode_to_array(image: Image.Image, upload: Upload, preprocessing: Preprocessing) -> np.ndarray:
    """Decode an opened image into the model's HxWx3 uint8 square, or reject it (400)."""
    try:
        return preprocessing.image_to_array(decode_rgb(image))
    except Exception as error:  # truncated data, bad EXIF, broken frames ... all 400
        raise _corrupt(upload, error) from error


def check_request_pixels(opened: Sequence[Image.Image], settings: ServeSettings) -> None:
    """Refuse (413) a request whose images hold more than max_request_pixels together."""
    total = sum(image.width * image.height for image in opened)
    if total > settings.max_request_pixels:
        raise RequestRejected(
            413,
            "too_many_pixels_in_request",
            f"the {len(opened)} images hold {total} pixels together; the limit per request "
            f"is {settings.max_request_pixels} (serve.max_request_pixels). "
            f"Send fewer or smaller images per request",
        )


async def decode_uploads(
    uploads: Sequence[Upload],
    settings: ServeSettings,
    preprocessing: Preprocessing,
    limiter: anyio.CapacityLimiter,
) -> DecodedUploads:
    """Return the model inputs and native sizes of uploads; bad input raises RequestRejected.

    Images above INLINE_DECODE_PIXELS decode in a worker thread, at most limiter's total at
    a time across the worker's requests, since decoding is where memory peaks.
    """
    # Every header is checked before any image is decoded, so a batch holding one bomb, or
    # too many pixels together, is refused without decoding the others.
    opened: list[Image.Image] = []
    try:
        for upload in uploads:
            opened.append(open_upload(upload, settings, preprocessing))
        check_request_pixels(opened, settings)
        # The native size comes from the header, before the resize to the model's input
        # hides it; the domain check compares it with the sizes seen in training.
        sizes = [(image.width, image.height) for image in opened]
        side = preprocessing.array_size
        arrays = np.empty((len(opened), side, side, 3), dtype=np.uint8)
        for index, (image, upload) in enumerate(zip(opened, uploads, strict=True)):
            if image.width * image.height > INLINE_DECODE_PIXELS:
                arrays[index] = await anyio.to_thread.run_sync(
                    decode_to_array, image, upload, preprocessing, limiter=limiter
                )
            else:
                arrays[index] = decode_to_array(image, upload, preprocessing)
            image.close()  # frees the decoded frame now, not when the batch ends
    finally:
        for image in opened:
            image.close()
    return DecodedUploads(arrays, sizes)
