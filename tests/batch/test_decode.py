"""Bulk scoring decodes each file within the service's limits, as the model's preprocessing
takes it."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from aidetector.batch.decode import FileDecoder, InputLimits
from aidetector.batch.resume import ScoredImages
from aidetector.preprocessing import Preprocessing

CROP = Preprocessing(image_size=32, mode="crop", store_size=64, inference_crops=1)
LIMITS = InputLimits(max_bytes=1 << 20, max_pixels=4_000_000, formats=("PNG", "JPEG"))


def test_a_thin_file_over_the_pixel_cap_once_upscaled_is_an_error_row(tmp_path: Path) -> None:
    thin = tmp_path / "thin.png"
    Image.new("RGB", (1, 1000)).save(thin)  # 64 x 64,000 = 4.1 Mpx in crop mode
    decoded = FileDecoder(CROP, LIMITS, ScoredImages())(str(thin))
    assert decoded.pixels is None
    assert decoded.error is not None
    assert "crop mode upscales to 64x64000" in decoded.error
    assert "(serve.max_pixels)" in decoded.error
    fits = tmp_path / "fits.png"
    Image.new("RGB", (10, 300)).save(fits)
    assert FileDecoder(CROP, LIMITS, ScoredImages())(str(fits)).pixels is not None
