"""POST /explain on a real server, for both families: the verdict plus a Grad-CAM overlay."""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
from PIL import Image

from aidetector.explain import OVERLAY_SIDE, Explainer
from aidetector.models.artifact import load_model_dir

from .conftest import BentoServer, ServingEnv, TinyModel, offline_prob_fake
from .images import MULTIPART, RAW, encode, multipart, photo, unique_jpeg

TWO_FILES = multipart([("a", unique_jpeg(1)), ("b", unique_jpeg(2))])


def overlay_of(body: dict) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(body["explanation"]["overlay_png"])))


def check_explanation(
    server: BentoServer, image: bytes, prob_fake: float, shape: list[int], method: str
) -> dict:
    response = server.post("/explain", data=image, headers=RAW)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["prob_fake"] == pytest.approx(prob_fake, abs=1e-5)
    assert body["label"] == ("FAKE" if prob_fake >= 0.5 else "REAL")
    explanation = body["explanation"]
    # The map is of the predicted class, and says so.
    assert explanation["class"] == body["label"] and explanation["method"] == method
    assert explanation["map_shape"] == shape
    overlay = overlay_of(body)
    assert overlay.format == "PNG" and overlay.size == (OVERLAY_SIDE, OVERLAY_SIDE)
    assert explanation["overlay_size"] == [OVERLAY_SIDE, OVERLAY_SIDE]
    return body


def test_explain_gives_the_verdict_of_predict_and_a_cnn_map(
    server: BentoServer, serving_env: ServingEnv
) -> None:
    image = unique_jpeg(7301)
    (prob_fake,) = offline_prob_fake(serving_env, "1", [image])
    body = check_explanation(server, image, float(prob_fake), [4, 4], "grad_cam")
    assert body["explanation"]["layer"] == "layer2"  # the 32 px resnet18's default
    predicted = server.post("/predict", data=image, headers=RAW).json()
    assert (predicted["label"], predicted["image_id"]) == (body["label"], body["image_id"])
    assert body["model"]["version"] == "1" and body["cached"] is False


def test_explain_takes_a_multipart_upload_like_predict(server: BentoServer) -> None:
    body = multipart([("file", unique_jpeg(7302))])
    response = server.post("/explain", data=body, headers=MULTIPART)
    assert response.status_code == 200, response.text
    assert response.json()["explanation"]["map_shape"] == [4, 4]


def test_explain_gives_a_vit_saliency_map_of_its_input(
    vit_server: BentoServer, vit_model: TinyModel
) -> None:
    image = unique_jpeg(7303)
    loaded = load_model_dir(vit_model.model_dir)
    expected = Explainer(loaded).explain(loaded.preprocessing.bytes_to_array(image))
    body = check_explanation(vit_server, image, expected.prob_fake, [32, 32], "saliency")
    assert body["explanation"]["layer"] == "input"
    assert body["model"]["version"] == "vit1"


@pytest.mark.parametrize(
    ("data", "headers", "status", "words"),
    [
        (b"not an image at all", RAW, 400, "is not an image"),
        (b"", RAW, 400, "empty"),
        (TWO_FILES, MULTIPART, 422, "at most 1 per request"),
    ],
    ids=["not-an-image", "empty", "two-files"],
)
def test_bad_input_to_explain_is_a_clear_4xx(
    server: BentoServer, data: bytes, headers: dict[str, str], status: int, words: str
) -> None:
    response = server.post("/explain", data=data, headers=headers)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_an_image_over_the_byte_cap_is_413_on_explain(
    server: BentoServer, serving_env: ServingEnv
) -> None:
    too_big = b"\xff\xd8" + bytes(int(serving_env.settings["max_bytes"]) + 1)
    response = server.post("/explain", data=too_big, headers=RAW)
    assert response.status_code == 413, response.text


def test_explain_needs_an_api_key(server: BentoServer) -> None:
    response = server.post("/explain", data=unique_jpeg(7304), headers={"X-API-Key": ""})
    assert response.status_code == 401


def test_explain_has_its_own_latency_histogram(server: BentoServer) -> None:
    before = server.metric("explain_latency_seconds_count") or 0.0
    predict_before = server.metric("inference_latency_seconds_count", endpoint="explain")
    started = time.perf_counter()
    response = server.post("/explain", data=encode(photo(7305), "PNG"), headers=RAW)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert server.metric("explain_latency_seconds_count") == before + 1
    assert server.metric("inference_requests_total", endpoint="explain", status="200")
    # Kept out of the prediction latency, whose alerts it would move.
    assert predict_before is None
    assert server.metric("inference_latency_seconds_count", endpoint="explain") is None
    print(f"/explain round trip {elapsed * 1000:.0f} ms; server {response.json()['latency_ms']} ms")
    assert np.isfinite(response.json()["latency_ms"])
