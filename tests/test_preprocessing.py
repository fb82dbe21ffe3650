"""The shared preprocessing path: decode, resize (or crop) and normalise the same way everywhere."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from aidetector.preprocessing import (
    ImageTooLargeError,
    Preprocessing,
    arrays_to_batch,
    crop_offsets,
    open_rgb,
)


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


def test_resize_is_the_default_and_its_config_has_no_crop_keys() -> None:
    preprocessing = Preprocessing(image_size=32)
    assert preprocessing.mode == "resize" and preprocessing.array_size == 32
    assert "store_size" not in preprocessing.to_dict()
    # A config.yaml written before modes existed reads as resize.
    assert Preprocessing.from_dict({"image_size": 32}) == preprocessing
    arrays = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    assert preprocessing.inference_inputs(arrays) is arrays  # untouched, not copied


def test_crop_mode_keeps_native_pixels_and_upscales_only_small_images() -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (80, 120, 3), dtype=np.uint8)  # 120 wide, 80 high
    crop = Preprocessing(image_size=32, mode="crop", store_size=64, inference_crops=5)
    stored = crop.image_to_array(Image.fromarray(pixels))
    np.testing.assert_array_equal(stored, pixels[8:72, 28:92])  # the centre 64 px square
    small = crop.image_to_array(Image.fromarray(pixels[:40, :50]))  # short side 40 < 64
    assert small.shape == (64, 64, 3)
    assert Preprocessing.from_dict(crop.to_dict()) == crop


def test_crop_mode_takes_the_centre_and_the_corners_in_order() -> None:
    crop = Preprocessing(image_size=2, mode="crop", store_size=4, inference_crops=5)
    arrays = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    inputs = crop.inference_inputs(arrays)
    assert inputs.shape == (10, 2, 2, 3)
    for image in range(2):
        for index, (top, left) in enumerate([(1, 1), (0, 0), (0, 2), (2, 0), (2, 2)]):
            expected = arrays[image, top : top + 2, left : left + 2]
            np.testing.assert_array_equal(inputs[5 * image + index], expected)
    np.testing.assert_array_equal(crop.centre_input(arrays[0]), inputs[0])
    values = np.arange(10, dtype=np.float32)
    np.testing.assert_allclose(crop.average_crops(values), [2.0, 7.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "crop", "store_size": 16, "inference_crops": 5}, "store_size of at least"),
        ({"mode": "crop", "store_size": 64, "inference_crops": 3}, "1, 5 or a square"),
        ({"mode": "zoom"}, "resize or crop"),
        ({"store_size": 64}, "crop mode only"),
    ],
)
def test_bad_crop_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Preprocessing(image_size=32, **kwargs)  # type: ignore[arg-type]


def test_a_grid_of_crops_runs_corner_to_corner() -> None:
    assert crop_offsets(64, 32, 4) == [(0, 0), (0, 32), (32, 0), (32, 32)]
    assert crop_offsets(64, 32, 1) == [(16, 16)]


def test_crop_mode_resamples_only_the_centre_square_of_a_thin_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crop = Preprocessing(image_size=32, mode="crop", store_size=64, inference_crops=1)
    resized: list[tuple[int, int]] = []
    resize = Image.Image.resize

    def recording_resize(image: Image.Image, size: tuple[int, int], *args: object) -> Image.Image:
        resized.append(size)
        return resize(image, size, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Image.Image, "resize", recording_resize)
    rng = np.random.default_rng(2)
    thin = Image.fromarray(rng.integers(0, 256, (4000, 2, 3), dtype=np.uint8))  # 2 x 4000
    stored = crop.image_to_array(thin)
    # Upscaling the whole image to a 64 px short side would be 64 x 128,000 pixels.
    assert stored.shape == (64, 64, 3)
    assert resized == [(64, 64)]
    # The stored square is the centre 2 x 2 of the original, upscaled.
    np.testing.assert_array_equal(
        stored, np.asarray(thin.crop((0, 1999, 2, 2001)).resize((64, 64), Image.BICUBIC))
    )


def test_crop_mode_refuses_an_image_whose_upscaled_size_passes_the_cap() -> None:
    crop = Preprocessing(image_size=32, mode="crop", store_size=64, inference_crops=1)
    thin = encode(Image.new("RGB", (1, 30_000)))  # 30 kpx, 64 x 1,920,000 once upscaled
    with pytest.raises(ImageTooLargeError, match=r"crop mode upscales to 64x1920000"):
        crop.bytes_to_array(thin, max_pixels=50_000_000)
    # The same image is fine in resize mode, and in crop mode under a cap it fits.
    assert Preprocessing(image_size=32).bytes_to_array(thin, max_pixels=50_000_000).shape == (
        32,
        32,
        3,
    )
    assert crop.bytes_to_array(thin, max_pixels=200_000_000).shape == (64, 64, 3)
