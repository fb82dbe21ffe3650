"""The one preprocessing path shared by ingest, training, evaluation and serving.

Images are decoded to RGB, resized to a square uint8 array once (ingest or request
time), then turned into normalised float tensors on the compute device.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms.v2 import functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageTooLargeError(ValueError):
    """The image header declares more pixels than the caller allows."""

    def __init__(self, width: int, height: int, max_pixels: int) -> None:
        super().__init__(
            f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}"
        )
        self.width, self.height, self.max_pixels = width, height, max_pixels


def open_image(
    source: bytes | str | Path,
    max_pixels: int | None = None,
    formats: Sequence[str] | None = None,
) -> Image.Image:
    """Parse only the header of an image and return it, not yet decoded.

    max_pixels is checked against the header (ImageTooLargeError) so that a decompression
    bomb is refused before any pixel is decoded; formats restricts which Pillow plugins may
    open the data.
    """
    image = Image.open(
        io.BytesIO(source) if isinstance(source, bytes) else source,
        formats=list(formats) if formats is not None else None,
    )
    if max_pixels is not None and image.width * image.height > max_pixels:
        raise ImageTooLargeError(image.width, image.height, max_pixels)
    return image


def decode_rgb(image: Image.Image) -> Image.Image:
    """Decode an opened image to RGB: first frame only, EXIF orientation applied."""
    if getattr(image, "is_animated", False):
        image.seek(0)
    image.load()
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits instead of clipping.
        array = np.asarray(image, dtype=np.float64)
        peak = max(float(array.max()), 1.0)
        image = Image.fromarray((array * (255.0 / peak)).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Composite transparency onto white rather than letting it turn black.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def open_rgb(
    source: bytes | str | Path,
    max_pixels: int | None = None,
    formats: Sequence[str] | None = None,
) -> Image.Image:
    """Decode an image fully and return it as RGB, first frame only, EXIF orientation applied.

    Limits as in open_image. Raises the Pillow/OSError exceptions of a bad file; callers
    decide how to report them.
    """
    return decode_rgb(open_image(source, max_pixels=max_pixels, formats=formats))


def resize_to_array(image: Image.Image, image_size: int) -> np.ndarray:
    """Return an HxWx3 uint8 array of the image resized to image_size x image_size."""
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.asarray(image, dtype=np.uint8)


@dataclass(frozen=True)
class Preprocessing:
    """Turns uint8 NCHW batches into the normalised float tensors a model expects."""

    image_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    equalize: bool = False

    def image_to_array(self, image: Image.Image) -> np.ndarray:
        """Resize a decoded RGB image to this preprocessing's HxWx3 uint8 input."""
        return resize_to_array(image, self.image_size)

    def bytes_to_array(
        self, data: bytes, max_pixels: int | None = None, formats: Sequence[str] | None = None
    ) -> np.ndarray:
        """Decode image bytes and resize them: the serving entry point (limits: see open_rgb)."""
        return self.image_to_array(open_rgb(data, max_pixels=max_pixels, formats=formats))

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalise a uint8 (N, 3, H, W) batch; optional histogram equalisation first."""
        if batch.dtype != torch.uint8:
            raise TypeError(f"preprocessing expects a uint8 batch, got {batch.dtype}")
        if self.equalize:
            batch = TF.equalize(batch)
        batch = batch.float().div_(255.0)
        normalized: torch.Tensor = TF.normalize(batch, list(self.mean), list(self.std))
        return normalized

    def to_dict(self) -> dict[str, object]:
        """Plain dict for config.yaml files."""
        data = asdict(self)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """Rebuild from a config.yaml mapping."""
        return cls(
            image_size=int(data["image_size"]),
            mean=tuple(data.get("mean", IMAGENET_MEAN)),
            std=tuple(data.get("std", IMAGENET_STD)),
            equalize=bool(data.get("equalize", False)),
        )


def arrays_to_batch(arrays: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """Stack HxWx3 uint8 arrays into a contiguous uint8 (N, 3, H, W) tensor."""
    stacked = np.stack(arrays) if isinstance(arrays, list) else arrays
    # Copy: cached arrays are read-only memory maps, which torch cannot wrap.
    return torch.from_numpy(np.array(stacked, dtype=np.uint8)).permute(0, 3, 1, 2).contiguous()
