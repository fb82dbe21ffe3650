"""The service end to end: a real `bentoml serve` and a real redis-server, nothing mocked."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from aidetector.models.artifact import load_model_dir
from aidetector.serving.cache import KEY_PREFIX, CachedPrediction, cache_key

from .conftest import (
    BentoServer,
    RedisServer,
    ServingEnv,
    offline_outputs,
    offline_prob_fake,
    start_server,
    wait_until,
)
from .images import MULTIPART, RAW, convertible_images, multipart, unique_jpeg


def test_served_probabilities_equal_offline_evaluation(
    server: BentoServer, serving_env: ServingEnv
) -> None:
    images = convertible_images()  # CMYK, 16-bit, palette, alpha, grey, GIF, EXIF ...
    expected, scores = offline_outputs(serving_env, "1", list(images.values()))
    domain = load_model_dir(serving_env.models["1"].model_dir).domain
    assert domain is not None
    for (name, data), want, score in zip(images.items(), expected, scores, strict=True):
        response = server.post("/predict", data=data, headers=RAW)
        assert response.status_code == 200, (name, response.text)
        body = response.json()
        # Calibrated: the offline side divides by the temperature in the model directory.
        assert body["prob_fake"] == pytest.approx(float(want), abs=1e-5), name
        # The domain verdict too: offline domain score and the native size in the header.
        native = Image.open(io.BytesIO(data)).size
        assert body["in_domain"] == domain.check(float(score), *native).in_domain, name
        assert body["prob_real"] == pytest.approx(1 - float(want), abs=1e-5)
        assert body["confidence"] == pytest.approx(max(body["prob_fake"], body["prob_real"]))
        assert body["label"] == ("FAKE" if body["prob_fake"] >= 0.5 else "REAL")
        assert body["image_id"] == hashlib.sha256(data).hexdigest()
        assert body["model"] == {
            "name": "ai-image-detector",
            "version": "1",
            "readable_name": "v1.0_cnn_resnet18_fp32",
            "precision": "fp32",  # the shared server runs on the CPU
        }
        assert body["latency_ms"] > 0


def test_multipart_and_raw_bytes_give_the_same_verdict(server: BentoServer) -> None:
    data = unique_jpeg(1)
    raw = server.post("/predict", data=data, headers={"Content-Type": "image/jpeg"}).json()
    form = server.post("/predict", files={"file": ("photo.jpg", data, "image/jpeg")}).json()
    assert form["prob_fake"] == raw["prob_fake"] and form["image_id"] == raw["image_id"]


def test_batch_keeps_input_order_and_matches_offline(
    server: BentoServer, serving_env: ServingEnv
) -> None:
    images = [unique_jpeg(100 + i) for i in range(7)]
    server.post("/predict", data=images[3], headers=RAW)  # one cached, six computed
    response = server.post(
        "/predict_batch", data=multipart([("files", d) for d in images]), headers=MULTIPART
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["image_id"] for r in results] == [hashlib.sha256(d).hexdigest() for d in images]
    assert [r["cached"] for r in results] == [False, False, False, True, False, False, False]
    expected = offline_prob_fake(serving_env, "1", images)
    np.testing.assert_allclose([r["prob_fake"] for r in results], expected, atol=1e-5)


def test_repeated_image_is_a_cache_hit_keyed_by_model_version_and_weights(
    server: BentoServer, serving_env: ServingEnv, redis_server: RedisServer
) -> None:
    data = unique_jpeg(2)
    first = server.post("/predict", data=data, headers=RAW).json()
    second = server.post("/predict", data=data, headers=RAW).json()
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["prob_fake"] == first["prob_fake"]
    key = cache_key(serving_env.models["1"].model_key, first["image_id"])
    model = serving_env.models["1"]
    name = model.registered_model
    assert key == f"aidetector:v2:prediction:{name}:1:{model.weights_sha256}:{first['image_id']}"
    assert 0 < redis_server.client().ttl(key) <= 3600
    # Everything a verdict needs: a hit opens no image, yet knows its native size.
    stored = CachedPrediction.decode(redis_server.client().get(key))
    assert stored is not None and (stored.width, stored.height) == (48, 40)
    assert stored.prob_fake == first["prob_fake"] and stored.domain_score > 0
    assert server.metric("cache_hits_total") >= 1


def test_promoting_a_new_champion_changes_the_cache_key(
    server: BentoServer, serving_env: ServingEnv, redis_server: RedisServer
) -> None:
    data = unique_jpeg(3)
    old = server.post("/predict", data=data, headers=RAW).json()
    assert server.post("/predict", data=data, headers=RAW).json()["cached"] is True
    env = serving_env.env(
        AIDETECTOR_MODEL_TAG=serving_env.models["2"].tag, REDIS_URL=redis_server.url
    )
    promoted = start_server(env, serving_env.root / "promoted.log")
    try:
        wait_until(promoted, "/readyz", 200)
        # A fresh process starts from the registered test accuracy.
        assert promoted.metric("model_accuracy", model_version="2") == pytest.approx(0.625)
        new = promoted.post("/predict", data=data, headers=RAW).json()
        assert new["model"]["version"] == "2" and new["cached"] is False
        assert new["prob_fake"] == pytest.approx(
            float(offline_prob_fake(serving_env, "2", [data])[0]), abs=1e-5
        )
        assert new["prob_fake"] != old["prob_fake"]
        assert promoted.post("/predict", data=data, headers=RAW).json()["cached"] is True
    finally:
        promoted.stop()
    keys = set(redis_server.client().keys(f"{KEY_PREFIX}:*:{old['image_id']}"))
    assert keys == {cache_key(serving_env.models[v].model_key, old["image_id"]) for v in "12"}


def test_redis_stopping_mid_run_still_serves_only_200s(
    server: BentoServer, redis_server: RedisServer
) -> None:
    errors_before = server.metric("cache_errors_total", operation="get") or 0.0
    warnings_before = len(server.events("cache_unavailable"))
    redis_server.stop()
    try:
        statuses = [
            server.post("/predict", data=unique_jpeg(200 + i), headers=RAW).status_code
            for i in range(12)
        ]
        assert statuses == [200] * 12
        assert server.metric("cache_errors_total", operation="get") > errors_before
        # Rate-limited: one warning for the whole outage, not one per request.
        assert len(server.events("cache_unavailable")) == warnings_before + 1
    finally:
        redis_server.start()
    time.sleep(1.2)  # serve.cache_retry_after_s=1.0 in the test settings
    data = unique_jpeg(250)
    server.post("/predict", data=data, headers=RAW)
    assert server.post("/predict", data=data, headers=RAW).json()["cached"] is True


def test_garbage_in_the_cache_is_recomputed_not_a_500(
    server: BentoServer, serving_env: ServingEnv, redis_server: RedisServer
) -> None:
    data = unique_jpeg(260)
    image_id = hashlib.sha256(data).hexdigest()
    model = serving_env.models["1"].model_key
    key = cache_key(model, image_id)
    garbage_values = (
        "0.25", "[0.25, 1.0]", '["x", null, 48, 40]', "\x00garbage", "[NaN, 1.0, 48, 40]",
        "[1.5, 1.0, 48, 40]", "[-0.1, 1.0, 48, 40]", "[0.5, Infinity, 48, 40]",
        "[0.5, 1.0, 0, 40]", "[0.5, 1.0, 48, 1e400]", "[true, 1.0, 48, 40]", "{}",
    )  # fmt: skip
    for garbage in garbage_values:
        redis_server.client().set(key, garbage)
        response = server.post("/predict", data=data, headers=RAW)
        assert response.status_code == 200, (garbage, response.text)
        assert response.json()["cached"] is False, garbage
        # The miss was recomputed and stored over the garbage.
        stored = redis_server.client().get(key)
        assert stored != garbage and CachedPrediction.decode(stored) is not None, garbage
        assert server.post("/predict", data=data, headers=RAW).json()["cached"] is True
    redis_server.client().set(key, "not json")
    batch = server.post(
        "/predict_batch", data=multipart([("files", data), ("files", data)]), headers=MULTIPART
    )
    assert batch.status_code == 200, batch.text
    assert [r["cached"] for r in batch.json()["results"]] == [False, False]
    # /feedback looks verdicts up in the cache too; garbage there is "unknown", not a 500.
    redis_server.client().set(cache_key(model, "e" * 64), "[1, 2, 3]")
    assert server.post("/feedback", json={"image_id": "e" * 64, "label": "REAL"}).status_code == 404


def test_a_model_that_cannot_load_is_neither_live_nor_ready(serving_env: ServingEnv) -> None:
    # Import a copy of version 1, then damage its weights inside the model store.
    broken_dir = serving_env.root / "broken_model"
    shutil.copytree(serving_env.models["1"].model_dir, broken_dir)
    (broken_dir / "metrics.json").write_text("{}")  # other metadata: a distinct import
    report = serving_env.root / "package-broken.json"
    subprocess.run(
        [sys.executable, "-m", "aidetector.registry.bento", "--model-dir", str(broken_dir),
         "--version", "9", "--no-build", "--report", str(report)],
        env=serving_env.env(), check=True, capture_output=True,
    )  # fmt: skip
    tag = json.loads(report.read_text())["model_tag"]
    name, version = tag.split(":")
    weights = serving_env.bentoml_home / "models" / name / version / "model.safetensors"
    with weights.open("ab") as handle:
        handle.write(b"damaged")
    broken = start_server(
        serving_env.env(AIDETECTOR_MODEL_TAG=tag), serving_env.root / "broken.log"
    )
    try:
        wait_until(broken, "/livez", 503)
        assert broken.get("/readyz").status_code == 503
        response = broken.post("/predict", data=unique_jpeg(4), headers=RAW)
        assert response.status_code == 503
        assert "failed to load" in response.json()["error"]
        assert "corrupt" in broken.events("model_load_failed")[0]["error"]
    finally:
        broken.stop()
