"""Serving a crop-mode model: a real `bentoml serve` answers like offline evaluation.

The model takes 32 px inputs and averages five fixed crops of the 96 px native-resolution
centre square of each upload (preprocessing.py). Its weights are random: what is checked is
the path, which does not care whether the network learnt anything (tests/training/
test_crop_mode.py trains one).
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from aidetector.data.demo import render_fake, render_real
from aidetector.inference import Outputs, predict_outputs
from aidetector.labels import FAKE, REAL, ClassOrder
from aidetector.models.artifact import load_model_dir, save_model_dir
from aidetector.models.factory import build_network
from aidetector.preprocessing import Preprocessing

from .conftest import (
    API_KEY,
    SPEC,
    BentoServer,
    ServingEnv,
    TinyModel,
    fit_test_domain,
    import_model,
    start_server,
    wait_until,
)
from .images import MULTIPART, RAW, encode, multipart

STORE = 96
PREPROCESSING = Preprocessing(image_size=32, mode="crop", store_size=STORE, inference_crops=5)
# (width, height): square, wider and taller than the stored square, and one smaller (upscaled).
SIZES = [(96, 96), (160, 120), (100, 144), (80, 72), (128, 128), (200, 104), (96, 112), (90, 90)]


def demo_jpegs() -> list[bytes]:
    """Demo-style REAL and FAKE renderings of SIZES, as JPEG uploads."""
    uploads = []
    for index, (width, height) in enumerate(SIZES):
        rng = np.random.default_rng([7, index])
        render = render_fake if index % 2 else render_real
        pixels = render(rng, max(width, height))[:height, :width]
        uploads.append(encode(Image.fromarray(pixels), "JPEG", quality=90))
    return uploads


@pytest.fixture(scope="module")
def crop_model(serving_env: ServingEnv) -> TinyModel:
    torch.manual_seed(5)
    network = build_network(**SPEC).eval()
    model_dir = serving_env.root / "model_crop"
    save_model_dir(
        network,
        SPEC,
        PREPROCESSING,
        model_dir,
        ClassOrder((REAL, FAKE)),
        temperature=1.3,
        domain=fit_test_domain(network, PREPROCESSING),
    )
    return import_model(serving_env, model_dir, "crop1", "crop1_cnn_resnet18_fp32")


@pytest.fixture(scope="module")
def crop_server(serving_env: ServingEnv, crop_model: TinyModel) -> Iterator[BentoServer]:
    env = serving_env.env(AIDETECTOR_MODEL_TAG=crop_model.tag)
    handle = start_server(env, serving_env.root / "crop-server.log", API_KEY)
    try:
        wait_until(handle, "/readyz", 200)
        yield handle
    finally:
        handle.stop()


def offline(crop_model: TinyModel, uploads: list[bytes]) -> Outputs:
    """P(FAKE) and domain score from the offline evaluation path on the same bytes."""
    loaded = load_model_dir(crop_model.model_dir)
    arrays = np.stack([loaded.preprocessing.bytes_to_array(data) for data in uploads])
    assert arrays.shape[1:] == (STORE, STORE, 3)
    return predict_outputs(
        loaded.network,
        loaded.preprocessing,
        arrays,
        temperature=loaded.temperature,
        domain=loaded.domain,
        fake_index=loaded.class_order.fake_index,
    )


def test_predict_and_predict_batch_equal_offline_evaluation(
    crop_server: BentoServer, crop_model: TinyModel
) -> None:
    uploads = demo_jpegs()
    expected = offline(crop_model, uploads)
    domain = load_model_dir(crop_model.model_dir).domain
    assert domain is not None
    for data, want, score in zip(uploads, expected.prob_fake, expected.distance, strict=True):
        response = crop_server.post("/predict", data=data, headers=RAW)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["prob_fake"] == pytest.approx(float(want), abs=1e-5)
        native = Image.open(io.BytesIO(data)).size
        assert body["in_domain"] == domain.check(float(score), *native).in_domain
    # Eight images are 40 crops, more than serve.max_batch_size (32): BentoML's batcher
    # splits them, and each image's five crops are still averaged back together.
    files = [(f"image{i}", data) for i, data in enumerate(uploads)]
    response = crop_server.post("/predict_batch", data=multipart(files), headers=MULTIPART)
    assert response.status_code == 200, response.text
    served = [result["prob_fake"] for result in response.json()["results"]]
    np.testing.assert_allclose(served, expected.prob_fake, atol=1e-5)


def test_explain_gives_the_averaged_verdict_and_a_centre_crop_map(
    crop_server: BentoServer, crop_model: TinyModel
) -> None:
    data = demo_jpegs()[1]
    (want,) = offline(crop_model, [data]).prob_fake
    response = crop_server.post("/explain", data=data, headers=RAW)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["prob_fake"] == pytest.approx(float(want), abs=1e-5)
    assert body["explanation"]["map_shape"] == [4, 4]  # layer2 of a 32 px crop


def test_a_thin_image_whose_upscaled_size_passes_the_pixel_cap_is_refused_unread(
    crop_server: BentoServer,
) -> None:
    # 1 x 1,000 px (a few hundred bytes): crop mode would upscale it to 96 x 96,000 = 9.2 Mpx,
    # over the test server's serve.max_pixels of 4 Mpx.
    thin = encode(Image.new("RGB", (1, 1000)), "PNG")
    response = crop_server.post("/predict", data=thin, headers=RAW)
    assert response.status_code == 413, response.text
    assert "crop mode upscales to 96x96000" in response.json()["error"]
    files = [("ok", demo_jpegs()[0]), ("thin", thin)]
    response = crop_server.post("/predict_batch", data=multipart(files), headers=MULTIPART)
    assert response.status_code == 413, response.text
    # A thin image that fits once upscaled is answered.
    fits = encode(Image.new("RGB", (10, 300)), "PNG")  # 96 x 2,880
    assert crop_server.post("/predict", data=fits, headers=RAW).status_code == 200
