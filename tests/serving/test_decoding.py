"""Decoding an upload: pixel cap from the header, accepted formats, the offline path, 4xx."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aidetector.preprocessing import Preprocessing, open_rgb
from aidetector.serving.decoding import decode_to_array, open_upload
from aidetector.serving.limits import RequestRejected, Upload
from aidetector.serving.settings import ServeSettings

from .conftest import ServingEnv
from .images import convertible_images, encode, photo, png_with_header, zero_png


@pytest.fixture
def settings(serving_env: ServingEnv) -> ServeSettings:
    return ServeSettings.from_mapping(serving_env.settings)


def decode(data: bytes, settings: ServeSettings) -> np.ndarray:
    upload = Upload(data)
    return decode_to_array(open_upload(upload, settings), upload, Preprocessing(image_size=32))


def rejection(data: bytes, settings: ServeSettings) -> RequestRejected:
    with pytest.raises(RequestRejected) as caught:
        decode(data, settings)
    return caught.value


def test_header_dimensions_are_checked_before_decoding(settings: ServeSettings) -> None:
    # The IDAT of this PNG holds 64 bytes: decoding would fail, so a 413 proves the header
    # alone was enough to refuse it.
    refused = rejection(png_with_header(4000, 4000), settings)
    assert refused.status == 413 and "16000000 pixels" in refused.message


def test_pixel_cap_is_inclusive(settings: ServeSettings) -> None:
    side = int(settings.max_pixels**0.5)
    assert decode(zero_png(side, side), settings).shape == (32, 32, 3)


@pytest.mark.parametrize("name", sorted(convertible_images()))
def test_convertible_images_decode_like_the_offline_path(
    name: str, settings: ServeSettings
) -> None:
    data = convertible_images()[name]
    expected = Preprocessing(image_size=32).image_to_array(open_rgb(data))
    np.testing.assert_array_equal(decode(data, settings), expected)


def test_animated_gif_uses_the_first_frame(settings: ServeSettings) -> None:
    first, second = photo(2), photo(3)
    animated = encode(first, "GIF", save_all=True, append_images=[second])
    only_first = encode(first, "GIF")
    np.testing.assert_array_equal(decode(animated, settings), decode(only_first, settings))


def test_exif_orientation_is_honoured(settings: ServeSettings) -> None:
    image = photo(5, (64, 32))
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    tagged = decode(encode(image, "PNG", exif=exif), settings)
    rotated = decode(encode(image.transpose(Image.Transpose.ROTATE_270), "PNG"), settings)
    np.testing.assert_array_equal(tagged, rotated)


def test_alpha_is_composited_onto_white(settings: ServeSettings) -> None:
    clear = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    assert decode(encode(clear, "PNG"), settings).min() == 255


def test_formats_outside_the_list_are_refused(settings: ServeSettings) -> None:
    refused = rejection(encode(photo(6), "PPM"), settings)
    assert refused.status == 400 and "accepted format" in refused.message


def test_truncated_image_is_a_400_not_a_crash(settings: ServeSettings) -> None:
    data = encode(photo(7, (256, 256)), "JPEG")
    refused = rejection(data[: len(data) // 3], settings)
    assert refused.status == 400 and "truncated or corrupt" in refused.message
    assert decode(data, settings).shape == (32, 32, 3)  # the whole file is fine
