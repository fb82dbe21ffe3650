"""Tests for aidetector.data.decode: the reason a bad file is skipped."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from aidetector.data.decode import DecodedImage, decode_file, strict_decoding


def _jpeg_bytes() -> bytes:
    """Return a small noisy JPEG."""
    pixels = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize("keep", [0.1, 0.3, 0.5, 0.7, 0.95])
def test_a_jpeg_cut_anywhere_is_corrupt_or_truncated(tmp_path: Path, keep: float) -> None:
    data = _jpeg_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * keep)])

    with strict_decoding():
        assert decode_file(path, 8) == "corrupt_or_truncated"


def test_text_is_not_an_image_and_a_valid_file_gives_pixels_hash_and_native_size(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.jpg").write_text("hello")
    (tmp_path / "b.jpg").write_bytes(_jpeg_bytes())

    with strict_decoding():
        assert decode_file(tmp_path / "a.jpg", 8) == "not_an_image"
        decoded = decode_file(tmp_path / "b.jpg", 8)

    assert isinstance(decoded, DecodedImage)
    assert decoded.pixels.shape == (8, 8, 3) and decoded.pixels.dtype == np.uint8
    assert len(decoded.sha256) == 64
    assert (decoded.width, decoded.height) == (24, 24)


def test_strict_decoding_restores_the_global_pillow_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)

    with strict_decoding():
        assert ImageFile.LOAD_TRUNCATED_IMAGES is False
        with pytest.raises(Image.DecompressionBombWarning):
            warnings.warn("big", Image.DecompressionBombWarning, stacklevel=1)

    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_crop_mode_skips_a_thin_file_that_would_pass_the_bomb_limit_once_upscaled(
    tmp_path: Path,
) -> None:
    path = tmp_path / "thin.png"
    Image.new("RGB", (1, 30_000)).save(path)  # 64 x 1,920,000 px once upscaled: not decoded
    with strict_decoding():
        assert decode_file(path, 64, mode="crop") == "too_large"
        decoded = decode_file(path, 64, mode="resize")
    assert not isinstance(decoded, str) and decoded.pixels.shape == (64, 64, 3)
