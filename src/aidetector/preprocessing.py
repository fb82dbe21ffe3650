"""The one preprocessing path shared by ingest, training, evaluation and serving.

Images are decoded to RGB, turned into a square uint8 array once (ingest or request
time), then into normalised float tensors on the compute device. How the square is made
is the model's preprocessing mode, recorded in its config.yaml:

* `resize` (the default, right for CIFAKE's 32 px thumbnails): the whole image resized to
  the network's input size; one input per image.
* `crop` (full-resolution images): the centre store_size square at native resolution, no
  resampling (an image whose short side is below store_size is first upscaled, bicubic, so
  that its short side is store_size). The network sees image_size crops of it: a random
  crop per sample and epoch in training, and at inference the mean of the calibrated
  P(FAKE) of inference_crops fixed crops (crop_offsets). Resizing a 1024 px photo to the
  input size smooths away the high-frequency traces generators leave; cropping keeps them.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms.v2 import functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PreprocessingMode = Literal["resize", "crop"]
PREPROCESSING_MODES: tuple[str, ...] = ("resize", "crop")


class ImageTooLargeError(ValueError):
    """The image header declares more pixels than the caller allows, as it is or at the size
    crop mode would upscale it to (upscaled)."""

    def __init__(
        self,
        width: int,
        height: int,
        max_pixels: int,
        upscaled: tuple[int, int] | None = None,
    ) -> None:
        if upscaled is None:
            size = f"image is {width}x{height} = {width * height} pixels"
        else:
            up_width, up_height = upscaled
            size = (
                f"image is {width}x{height}, which crop mode upscales to "
                f"{up_width}x{up_height} = {up_width * up_height} pixels"
            )
        super().__init__(f"{size}; the limit is {max_pixels}")
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


def upscaled_size(width: int, height: int, side: int) -> tuple[int, int]:
    """Return the size crop mode takes an image to: its own, or, when its short side is below
    side, that size upscaled (aspect kept) until the short side is side."""
    short = min(width, height)
    if short >= side:
        return width, height
    scale = side / short
    return max(side, round(width * scale)), max(side, round(height * scale))


def check_upscaled_size(width: int, height: int, side: int, max_pixels: int | None) -> None:
    """Raise ImageTooLargeError when crop mode would upscale an image of this size (its short
    side below side) past max_pixels; None means no cap."""
    up_width, up_height = upscaled_size(width, height, side)
    upscaled = (up_width, up_height) != (width, height)
    if upscaled and max_pixels is not None and up_width * up_height > max_pixels:
        raise ImageTooLargeError(width, height, max_pixels, (up_width, up_height))


def native_square(image: Image.Image, side: int) -> np.ndarray:
    """Return the centre side x side square of an image at native resolution, HxWx3 uint8.

    Pixels are never resampled unless the image is too small: an image whose short side is
    below side has its centre square upscaled (bicubic) to side. Only that square is
    resampled, so the work is side x side whatever the aspect ratio: upscaling the whole of a
    1 x 2,000 image to a 224 px short side would take half a gigabyte.
    """
    width, height = image.size
    short = min(width, height)
    if short < side:
        left, top = (width - short) // 2, (height - short) // 2
        square = image.crop((left, top, left + short, top + short))
        return np.asarray(square.resize((side, side), Image.Resampling.BICUBIC), dtype=np.uint8)
    left, top = (width - side) // 2, (height - side) // 2
    return np.asarray(image.crop((left, top, left + side, top + side)), dtype=np.uint8)


def crop_offsets(store_size: int, crop_size: int, count: int) -> list[tuple[int, int]]:
    """Return the (top, left) of count fixed crop_size crops of a store_size square.

    1: the centre; 5: the centre and the four corners; k*k: an even k x k grid from corner
    to corner. Deterministic, so evaluation and serving average the same crops.
    """
    span = store_size - crop_size
    if span < 0:
        raise ValueError(f"crop size {crop_size} is larger than the stored square {store_size}")
    centre = span // 2
    if count == 1:
        return [(centre, centre)]
    if count == 5:
        return [(centre, centre), (0, 0), (0, span), (span, 0), (span, span)]
    k = math.isqrt(count)
    if count < 1 or k * k != count:
        raise ValueError(f"inference_crops must be 1, 5 or a square (4, 9, 16 ...), got {count}")
    steps = [round(i * span / (k - 1)) for i in range(k)]
    return [(top, left) for top in steps for left in steps]


def average_crops(values: np.ndarray, crops: int) -> np.ndarray:
    """Return the mean over each image's consecutive crops of per-crop rows (N*crops, ...)."""
    if crops == 1:
        return values
    return np.asarray(values.reshape(-1, crops, *values.shape[1:]).mean(axis=1), values.dtype)


@dataclass(frozen=True)
class Preprocessing:
    """Turns decoded images into uint8 arrays and uint8 NCHW batches into normalised tensors.

    image_size is the network's input side. In crop mode the stored arrays are store_size
    squares and inference averages inference_crops fixed image_size crops of each (module
    docstring); in resize mode they are the input itself and store_size is None.
    """

    image_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    equalize: bool = False
    mode: PreprocessingMode = "resize"
    store_size: int | None = None
    inference_crops: int = 1

    def __post_init__(self) -> None:
        if self.mode not in PREPROCESSING_MODES:
            raise ValueError(f"preprocessing mode must be resize or crop, got {self.mode!r}")
        if self.mode == "resize":
            if self.store_size is not None or self.inference_crops != 1:
                raise ValueError("store_size and inference_crops apply to crop mode only")
            return
        if self.store_size is None or self.store_size < self.image_size:
            raise ValueError(
                f"crop mode needs a store_size of at least the input size {self.image_size}, "
                f"got {self.store_size}"
            )
        crop_offsets(self.store_size, self.image_size, self.inference_crops)  # checks the count

    @property
    def array_size(self) -> int:
        """Side of the square arrays image_to_array makes (prepared data, decoded uploads)."""
        return self.store_size if self.store_size is not None else self.image_size

    @property
    def crops_per_image(self) -> int:
        """How many network inputs one image becomes at inference (1 in resize mode)."""
        return self.inference_crops

    def image_to_array(self, image: Image.Image) -> np.ndarray:
        """Turn a decoded RGB image into this preprocessing's HxWx3 uint8 array."""
        return image_to_array(image, self.mode, self.array_size)

    def check_size(self, width: int, height: int, max_pixels: int | None) -> None:
        """Raise ImageTooLargeError when an image of this size passes max_pixels as this
        preprocessing takes it: crop mode counts a small image at its upscaled size."""
        if self.mode == "crop":
            check_upscaled_size(width, height, self.array_size, max_pixels)

    def open(
        self,
        source: bytes | str | Path,
        max_pixels: int | None = None,
        formats: Sequence[str] | None = None,
    ) -> Image.Image:
        """Parse an image's header (open_image) and check its size as this preprocessing
        takes it, before any pixel is decoded."""
        image = open_image(source, max_pixels=max_pixels, formats=formats)
        try:
            self.check_size(image.width, image.height, max_pixels)
        except ImageTooLargeError:
            image.close()
            raise
        return image

    def bytes_to_array(
        self, data: bytes, max_pixels: int | None = None, formats: Sequence[str] | None = None
    ) -> np.ndarray:
        """Decode image bytes into the stored array, within the limits of open()."""
        return self.image_to_array(decode_rgb(self.open(data, max_pixels, formats)))

    def inference_inputs(self, arrays: np.ndarray) -> np.ndarray:
        """Return the network inputs of (N, S, S, 3) arrays: (N * crops_per_image, s, s, 3).

        Each image's fixed crops are consecutive (average_crops undoes the layout); in resize
        mode the arrays are the inputs and are returned as they are.
        """
        if self.mode == "resize":
            return arrays
        size = self.image_size
        offsets = crop_offsets(self.array_size, size, self.inference_crops)
        crops = [arrays[:, top : top + size, left : left + size] for top, left in offsets]
        return np.stack(crops, axis=1).reshape(-1, size, size, 3)

    def average_crops(self, values: np.ndarray) -> np.ndarray:
        """Return per-image means of per-input rows in inference_inputs' order."""
        return average_crops(values, self.crops_per_image)

    def centre_input(self, array: np.ndarray) -> np.ndarray:
        """Return the one network input that stands for an image: its centre crop (crop
        mode), the array itself (resize mode). Explanations are drawn on it."""
        if self.mode == "resize":
            return array
        ((top, left),) = crop_offsets(self.array_size, self.image_size, 1)
        return array[top : top + self.image_size, left : left + self.image_size]

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
        """Plain dict for config.yaml files; the crop settings only in crop mode."""
        data = asdict(self)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        if self.mode == "resize":
            del data["store_size"], data["inference_crops"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """Rebuild from a config.yaml mapping (no `mode`: a resize model saved before crops)."""
        store = data.get("store_size")
        return cls(
            image_size=int(data["image_size"]),
            mean=tuple(data.get("mean", IMAGENET_MEAN)),
            std=tuple(data.get("std", IMAGENET_STD)),
            equalize=bool(data.get("equalize", False)),
            mode=cast(PreprocessingMode, str(data.get("mode", "resize"))),  # checked on init
            store_size=int(store) if store is not None else None,
            inference_crops=int(data.get("inference_crops", 1)),
        )


def image_to_array(image: Image.Image, mode: str, side: int) -> np.ndarray:
    """Return a decoded image's side x side uint8 array: resized (resize) or native (crop)."""
    return native_square(image, side) if mode == "crop" else resize_to_array(image, side)


def arrays_to_batch(arrays: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """Stack HxWx3 uint8 arrays into a contiguous uint8 (N, 3, H, W) tensor."""
    stacked = np.stack(arrays) if isinstance(arrays, list) else arrays
    # Copy: cached arrays are read-only memory maps, which torch cannot wrap.
    return torch.from_numpy(np.array(stacked, dtype=np.uint8)).permute(0, 3, 1, 2).contiguous()
