"""The shared preprocessing path: decode, resize and normalise the same way everywhere."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from aidetector.preprocessing import Preprocessing, arrays_to_batch, open_rgb


def encode(image: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_bytes_and_decoded_image_give_the_same_array() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8))
    preprocessing = Preprocessing(image_size=32)
    from_bytes = preprocessing.bytes_to_array(encode(image))
    assert from_bytes.shape == (32, 32, 3) and from_bytes.dtype == np.uint8
    np.testing.assert_array_equal(from_bytes, preprocessing.image_to_array(image))


def test_normalisation_uses_mean_and_std() -> None:
    batch = torch.full((1, 3, 4, 4), 255, dtype=torch.uint8)
    out = Preprocessing(image_size=4, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))(batch)
    assert torch.allclose(out, torch.full_like(out, 2.0))


def test_equalisation_spreads_a_narrow_histogram() -> None:
    # 32x32: like PIL, equalisation needs at least 256 pixels per channel to spread.
    narrow = np.random.default_rng(0).integers(100, 110, (1, 32, 32, 3), dtype=np.uint8)
    plain = Preprocessing(image_size=32)(arrays_to_batch(narrow))
    equalised = Preprocessing(image_size=32, equalize=True)(arrays_to_batch(narrow))
    assert equalised.std() > 3 * plain.std()


def test_alpha_is_composited_on_white_and_exif_rotation_applied() -> None:
    transparent = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert open_rgb(encode(transparent)).getpixel((0, 0)) == (255, 255, 255)
    wide = Image.new("RGB", (20, 10), (10, 20, 30))
    exif = wide.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    rotated = open_rgb(encode(wide, "JPEG", exif=exif.tobytes()))
    assert rotated.size == (10, 20)


def test_first_frame_of_an_animated_gif() -> None:
    frames = [Image.new("P", (8, 8), color) for color in (1, 2)]
    data = io.BytesIO()
    frames[0].save(data, format="GIF", save_all=True, append_images=frames[1:])
    assert open_rgb(data.getvalue()).size == (8, 8)
