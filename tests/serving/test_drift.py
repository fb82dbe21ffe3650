"""Input drift in serving: the rolling window, the PSI gauges on a live /metrics, and the
verdict of both on in-domain traffic and on xsource photos (other sources, full size)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from aidetector.config.serve import load_serve_settings
from aidetector.models.artifact import load_model_dir
from aidetector.models.drift import FEATURES, DriftReference, FeatureBins, image_features
from aidetector.serving.drift import DriftMonitor
from aidetector.serving.logging_json import RateLimitedWarner
from aidetector.serving.metrics import service_metrics

from .conftest import (
    PROJECT_ROOT,
    STORE_SERVER_SETTINGS,
    BentoServer,
    ServingEnv,
    offline_prob_fake,
    training_like_images,
)
from .images import TRAINING_SIZE, multipart

XSOURCE = PROJECT_ROOT.parent / "shared" / "data" / "xsource"
WINDOW = STORE_SERVER_SETTINGS["drift_window"]
# The alert's threshold: the packaged serve.drift_psi_alert (AIDetectorInputDrift uses it).
ALERT_PSI = load_serve_settings(PROJECT_ROOT / "params.yaml").drift_psi_alert
IMAGE_FEATURE_COUNT = len(FEATURES) - 1


def psi_gauges() -> dict[str, float | None]:
    return {
        name: REGISTRY.get_sample_value("input_drift_psi", {"feature": name}) for name in FEATURES
    }


def monitor(window: int, min_samples: int, update_every: int) -> DriftMonitor:
    rng = np.random.default_rng(0)
    reference = DriftReference(
        {name: FeatureBins.fit(rng.normal(size=500)) for name in FEATURES}, samples=500
    )
    return DriftMonitor(
        reference, service_metrics(), window, min_samples, update_every, 0.25, RateLimitedWarner(60)
    )


def test_scores_stay_zero_until_the_window_holds_min_samples() -> None:
    drift = monitor(window=50, min_samples=40, update_every=5)
    rng = np.random.default_rng(1)
    drift.add(rng.normal(size=(39, len(FEATURES))) + 3.0)  # far off, but too few to judge
    assert set(psi_gauges().values()) == {0.0}
    assert REGISTRY.get_sample_value("input_drift_window_images") == 39
    drift.add(rng.normal(size=(1, len(FEATURES))) + 3.0)
    assert min(v for v in psi_gauges().values() if v is not None) > 1.0


def test_the_window_keeps_only_the_latest_images() -> None:
    drift = monitor(window=400, min_samples=400, update_every=400)
    rng = np.random.default_rng(2)
    drift.add(rng.normal(size=(400, len(FEATURES))) + 3.0)
    assert min(drift.scores.values()) > 1.0
    # 400 in-distribution rows replace the shifted ones entirely.
    drift.add(rng.normal(size=(400, len(FEATURES))))
    assert max(drift.scores.values()) < 0.1
    assert REGISTRY.get_sample_value("input_drift_window_images") == 400


def test_scores_are_recomputed_every_update_every_images() -> None:
    drift = monitor(window=20, min_samples=10, update_every=10)
    rng = np.random.default_rng(3)
    drift.add(rng.normal(size=(10, len(FEATURES))))
    before = dict(drift.scores)
    drift.add(rng.normal(size=(9, len(FEATURES))) + 5.0)  # not due yet
    assert drift.scores == before
    drift.add(rng.normal(size=(1, len(FEATURES))) + 5.0)
    assert drift.scores != before


def post_batches(server: BentoServer, images: list[bytes], per_request: int = 8) -> None:
    for start in range(0, len(images), per_request):
        chunk = images[start : start + per_request]
        body = multipart([(f"{start + i}.jpg", data) for i, data in enumerate(chunk)])
        response = server.post(
            "/predict_batch",
            data=body,
            headers={"Content-Type": "multipart/form-data; boundary=testboundary"},
        )
        assert response.status_code == 200, response.text


def scraped_psi(server: BentoServer) -> dict[str, float]:
    values = {name: server.metric("input_drift_psi", feature=name) for name in FEATURES}
    assert None not in values.values(), values
    return {name: float(value) for name, value in values.items() if value is not None}


def xsource_images(per_class: int) -> list[bytes]:
    """The smallest files of each xsource class: other generators, and full-size photos."""
    if not XSOURCE.is_dir():
        pytest.skip(f"{XSOURCE} is absent: the out-of-source photos live in ../shared only")
    chosen: list[Path] = []
    for class_name in ("FAKE", "REAL"):
        files = sorted((XSOURCE / class_name).glob("*.jpg"), key=lambda p: p.stat().st_size)
        chosen += files[:per_class]
    return [path.read_bytes() for path in chosen]


def test_in_domain_traffic_stays_below_the_alert_and_xsource_crosses_it(
    store_server: BentoServer, serving_env: ServingEnv
) -> None:
    # The reference is the evaluation-time profile the model carries (conftest: 400
    # training-like photos); the traffic is WINDOW more photos of the same kind.
    images = training_like_images(80_000, WINDOW)
    post_batches(store_server, images)
    assert store_server.metric("input_drift_window_images") == WINDOW
    in_domain = scraped_psi(store_server)
    assert max(in_domain.values()) < ALERT_PSI, in_domain

    # The served scores are the offline computation on the same bytes: same decode, same
    # features, the model directory's reference.
    loaded = load_model_dir(serving_env.models["2"].model_dir)
    assert loaded.drift is not None
    arrays = np.stack([loaded.preprocessing.bytes_to_array(data) for data in images])
    rows = np.column_stack(
        [
            image_features(arrays, [TRAINING_SIZE] * len(images)),
            offline_prob_fake(serving_env, "2", images),
        ]
    )
    offline = loaded.drift.psi(rows)
    for name in FEATURES[:IMAGE_FEATURE_COUNT]:
        assert in_domain[name] == pytest.approx(offline[name], abs=1e-9), name
    assert in_domain["prob_fake"] == pytest.approx(offline["prob_fake"], abs=0.02)

    # 20 xsource images (10 per class) take a tenth of the window.
    for data in xsource_images(per_class=10):
        response = store_server.post(
            "/predict", data=data, headers={"Content-Type": "application/octet-stream"}
        )
        assert response.status_code == 200, response.text
    shifted = scraped_psi(store_server)
    assert max(shifted.values()) > ALERT_PSI, shifted
    # Never seen sizes: far beyond the threshold on their own.
    assert min(shifted["width"], shifted["height"]) > ALERT_PSI, shifted
    # The service logged the crossing (rate-limited: the first features to cross).
    warnings = store_server.events("input_drift")
    assert len(warnings) == 1 and warnings[0]["threshold"] == ALERT_PSI
    assert warnings[0]["psi"] and all(v > ALERT_PSI for v in warnings[0]["psi"].values())
    assert set(warnings[0]["psi"]) <= set(FEATURES)


def test_a_model_without_a_reference_exports_no_drift_scores(vit_server: BentoServer) -> None:
    # The tiny ViT was saved without one, like a version registered before drift profiles.
    response = vit_server.post(
        "/predict", data=training_like_images(81_000, 1)[0], headers={"Content-Type": "image/jpeg"}
    )
    assert response.status_code == 200, response.text
    assert vit_server.metric("input_drift_psi") is None
    assert vit_server.events("model_ready")[-1]["drift_features"] == []
