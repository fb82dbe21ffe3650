"""One listed file into the model's input through the shared preprocessing, or why not.

The same steps as an upload to the service (serving/decoding.py), with the service's
limits: the byte cap, the pixel cap read from the header before any pixel is decoded,
the accepted formats; then decode_rgb and the resize of aidetector.preprocessing. A file
that fails any step becomes a DecodedFile with an `error`, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, UnidentifiedImageError

from aidetector.batch.resume import ScoredImages
from aidetector.batch.sources import read_source
from aidetector.config.serve import ServeSettings
from aidetector.errors import first_line
from aidetector.preprocessing import ImageTooLargeError, Preprocessing, decode_rgb


@dataclass(frozen=True)
class InputLimits:
    """The service's input limits (the `serve` config), applied to every file."""

    max_bytes: int
    max_pixels: int
    formats: tuple[str, ...]

    @classmethod
    def from_serve(cls, settings: ServeSettings) -> InputLimits:
        """The limits of serve.max_bytes, serve.max_pixels and serve.formats."""
        return cls(settings.max_bytes, settings.max_pixels, tuple(settings.formats))


@dataclass(frozen=True)
class DecodedFile:
    """One file: its content hash and native size, and its model input or the error.

    skipped: already scored by this model version (read and hashed, not decoded).
    """

    path: str
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    pixels: np.ndarray | None = None
    error: str | None = None
    skipped: bool = False

    @property
    def ok(self) -> bool:
        """Whether the file has a model input to score."""
        return self.pixels is not None

    def without_pixels(self) -> DecodedFile:
        """The same file without its pixels (they travel stacked, once per batch)."""
        return replace(self, pixels=None)


@dataclass(frozen=True)
class FileDecoder:
    """Reads, hashes and decodes one file; picklable, for DataLoader workers and Ray tasks."""

    preprocessing: Preprocessing
    limits: InputLimits
    scored: ScoredImages

    def __call__(self, path: str) -> DecodedFile:
        """Return the file's model input and facts, or the reason it has none."""
        try:
            read = read_source(path, self.limits.max_bytes)
        except Exception as error:  # missing, permissions, network: retried by a rerun
            return DecodedFile(path, error=f"could not be read: {first_line(error)}")
        if read.sha256 in self.scored:
            return DecodedFile(path, read.sha256, skipped=True)
        failed = DecodedFile(path, read.sha256)
        if read.data is None:
            return replace(
                failed,
                error=f"the file is {read.size} bytes; the limit is {self.limits.max_bytes} "
                f"(serve.max_bytes)",
            )
        if not read.data:
            return replace(failed, error="the file is empty")
        try:
            image = self.preprocessing.open(read.data, self.limits.max_pixels, self.limits.formats)
        except (ImageTooLargeError, Image.DecompressionBombError) as error:
            return replace(failed, error=f"{first_line(error)} (serve.max_pixels)")
        except UnidentifiedImageError:
            formats = ", ".join(self.limits.formats)
            return replace(failed, error=f"not an image in an accepted format ({formats})")
        except Exception as error:  # any parser failure on the file's bytes is the file's
            return replace(failed, error=corrupt(error))
        with image:
            width, height = image.size
            try:
                pixels = self.preprocessing.image_to_array(decode_rgb(image))
            except Exception as error:  # truncated data, bad EXIF, broken frames
                return replace(failed, width=width, height=height, error=corrupt(error))
        return DecodedFile(path, read.sha256, width, height, pixels)


def corrupt(error: Exception) -> str:
    """The error text of a file that could not be decoded."""
    return f"could not be decoded ({first_line(error)}); the file may be truncated or corrupt"
