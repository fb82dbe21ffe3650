"""Decoding uploads into model inputs through the shared preprocessing, or a 4xx.

The second step of a request (limits.py reads it, this decodes it, verdicts.py predicts):
every header is parsed within the pixel cap and format list before any image is decoded,
then each image goes through the same `preprocessing` code as training and evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import anyio.to_thread
import numpy as np
from PIL import Image, UnidentifiedImageError

from aidetector.preprocessing import ImageTooLargeError, Preprocessing, decode_rgb, open_image
from aidetector.serving.limits import RequestRejected, Upload
from aidetector.serving.settings import ServeSettings

# Images up to this many pixels decode on the event loop; larger ones go to a thread so
# that one big (or hostile but within-limits) image cannot stall every other request.
INLINE_DECODE_PIXELS = 512 * 512


@dataclass(frozen=True)
class DecodedUploads:
    """Model inputs, uint8 (N, H, W, 3), and each upload's native (width, height)."""

    arrays: np.ndarray
    sizes: list[tuple[int, int]]


def open_upload(upload: Upload, settings: ServeSettings) -> Image.Image:
    """Parse an upload's header within the pixel cap and format list, or reject it."""
    try:
        image = open_image(upload.data, max_pixels=settings.max_pixels, formats=settings.formats)
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
    """Decode an opened image into the model's HxWx3 uint8 input, or reject it (400)."""
    try:
        return preprocessing.image_to_array(decode_rgb(image))
    except Exception as error:  # truncated data, bad EXIF, broken frames ... all 400
        raise _corrupt(upload, error) from error


def needs_thread(images: Sequence[Image.Image]) -> bool:
    """Return True when decoding these images is too slow for the event loop."""
    return sum(image.width * image.height for image in images) > INLINE_DECODE_PIXELS


def _decode_opened(
    opened: Sequence[Image.Image], uploads: Sequence[Upload], preprocessing: Preprocessing
) -> np.ndarray:
    return np.stack(
        [
            decode_to_array(image, upload, preprocessing)
            for image, upload in zip(opened, uploads, strict=True)
        ]
    )


async def decode_uploads(
    uploads: Sequence[Upload], settings: ServeSettings, preprocessing: Preprocessing
) -> DecodedUploads:
    """Return the model inputs and native sizes of uploads; bad input raises RequestRejected."""
    # Every header is checked before any image is decoded, so a batch holding one bomb is
    # refused without decoding the others.
    opened = [open_upload(upload, settings) for upload in uploads]
    # The native size comes from the header, before the resize to the model's input hides
    # it; the domain check compares it with the sizes seen in training.
    sizes = [(image.width, image.height) for image in opened]
    if needs_thread(opened):
        arrays = await anyio.to_thread.run_sync(_decode_opened, opened, uploads, preprocessing)
    else:
        arrays = _decode_opened(opened, uploads, preprocessing)
    return DecodedUploads(arrays, sizes)
