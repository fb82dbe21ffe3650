"""Decoding an upload: pixel cap from the header, accepted formats, the offline path, 4xx."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np
import psutil
import pytest
import yaml
from PIL import Image

from aidetector.config.serve import ServeSettings
from aidetector.preprocessing import Preprocessing, open_rgb
from aidetector.serving.decoding import decode_to_array, open_upload
from aidetector.serving.limits import RequestRejected, Upload

from .conftest import PROJECT_ROOT, BentoServer, ServingEnv, start_server, wait_until
from .images import convertible_images, encode, photo, png_with_header, zero_png


@pytest.fixture
def settings(serving_env: ServingEnv) -> ServeSettings:
    return ServeSettings.from_mapping(serving_env.settings)


def decode(data: bytes, settings: ServeSettings) -> np.ndarray:
    upload = Upload(data)
    preprocessing = Preprocessing(image_size=32)
    return decode_to_array(open_upload(upload, settings, preprocessing), upload, preprocessing)


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


# The production caps, from conf/serve/default.yaml, for the memory test's own server.
PRODUCTION_CAPS = (
    "max_bytes",
    "max_pixels",
    "max_batch_images",
    "max_batch_bytes",
    "max_request_pixels",
    "decode_concurrency",
)
# A decode peaks at up to 20 bytes per decoded pixel (32-bit TIFF, measured; RGBA PNG is 16);
# the budget of conf/serve/default.yaml allows 25.
DECODE_BYTES_PER_PIXEL = 25


@pytest.fixture(scope="module")
def production_caps_server(
    serving_env: ServingEnv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[BentoServer, ServeSettings]]:
    """A server with the packaged limits (50 Mpx, 32 images), not the tests' small ones."""
    defaults = yaml.safe_load((PROJECT_ROOT / "conf/serve/default.yaml").read_text())
    root = tmp_path_factory.mktemp("production-caps")
    overrides = root / "serve.yaml"
    overrides.write_text(yaml.safe_dump({key: defaults[key] for key in PRODUCTION_CAPS}))
    env = serving_env.env(
        AIDETECTOR_MODEL_TAG=serving_env.models["1"].tag,
        AIDETECTOR_SERVE_OVERRIDES=str(overrides),
    )
    handle = start_server(env, root / "server.log")
    try:
        wait_until(handle, "/readyz", 200)
        yield handle, ServeSettings.from_mapping({**serving_env.settings, **defaults})
    finally:
        handle.stop()


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its children (BentoML's workers)."""
    process = psutil.Process(pid)
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += member.memory_info().rss
    return total


class PeakRss:
    """Samples a process tree's RSS every 20 ms in a thread; peak is the largest seen."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, tree_rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, tree_rss(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def blank_rgba_png(side: int, seed: int) -> bytes:
    """A transparent side x side PNG: a few hundred KB on the wire, side**2 RGBA once decoded."""
    image = Image.new("RGBA", (side, side))
    image.putpixel((0, 0), (seed % 256, 0, 0, 255))  # distinct bytes per seed
    return encode(image, "PNG")


def test_memory_of_a_batch_at_the_pixel_cap_stays_bounded(
    production_caps_server: tuple[BentoServer, ServeSettings],
) -> None:
    server, settings = production_caps_server
    side = int(settings.max_pixels**0.5)
    warm = server.post("/predict_batch", files=[("files", encode(photo(i), "PNG")) for i in (1, 2)])
    assert warm.status_code == 200, warm.text
    before = tree_rss(server.process.pid)
    at_cap = blank_rgba_png(side, 0)
    # The request: 32 images, each under the per-image cap. The request budget
    # refuses it from the headers, before any pixel is decoded.
    files = [("files", (f"blank{i}.png", at_cap)) for i in range(settings.max_batch_images)]
    with PeakRss(server.process.pid) as refused_peak:
        refused = server.post("/predict_batch", files=files)
    assert refused.status_code == 413, refused.text
    assert "max_request_pixels" in refused.json()["error"]
    # As many images at the cap as the budget allows are decoded, one frame at a time.
    fitting = settings.max_request_pixels // (side * side)
    files = [("files", (f"b{i}.png", blank_rgba_png(side, i + 1))) for i in range(fitting)]
    with PeakRss(server.process.pid) as answered_peak:
        answered = server.post("/predict_batch", files=files)
    assert answered.status_code == 200 and answered.json()["count"] == fitting, answered.text
    after = tree_rss(server.process.pid)
    mb = 2**20
    print(
        f"server RSS {before / mb:.0f} MiB before, peak {refused_peak.peak / mb:.0f} MiB for the "
        f"refused 32-image batch, peak {answered_peak.peak / mb:.0f} MiB for {fitting} decoded "
        f"images at the cap, {after / mb:.0f} MiB after"
    )
    # One full-size frame alive at a time: its decode peak, plus the bodies.
    one_frame = DECODE_BYTES_PER_PIXEL * settings.max_pixels
    assert refused_peak.peak - before < 256 * mb
    assert answered_peak.peak - before < one_frame + 256 * mb
    # Released frames go back to the system (see decoding.PILLOW_BLOCK_BYTES).
    assert after - before < 256 * mb
