"""Observability: Prometheus metric names on BentoML's /metrics, JSON logs, feedback."""

from __future__ import annotations

import re
import secrets

import pytest
import requests

from .conftest import FEEDBACK_KEYS, BentoServer
from .images import RAW, unique_jpeg

LOG_FIELDS = {
    "event", "image_id", "prediction", "verdict", "in_domain", "confidence", "latency_ms",
    "model_version", "cached", "timestamp",
}  # fmt: skip


def test_metrics_are_exported_with_the_documented_names(server: BentoServer) -> None:
    server.post("/predict", data=unique_jpeg(300), headers=RAW)
    server.post("/predict", data=b"not an image", headers=RAW)
    text = server.get("/metrics").text
    for name in (
        'inference_requests_total{endpoint="predict",status="200"}',
        'inference_requests_total{endpoint="predict",status="400"}',
        'inference_latency_seconds_bucket{endpoint="predict"',
        'model_accuracy{model_version="1"}',
        'model_registered_accuracy{model_version="1"}',
        "cache_hits_total",
        "cache_misses_total",
        'inference_errors_total{type="not_an_image"}',
        "predictions_total{label=",
        "bentoml_service_adaptive_batch_size_bucket",  # BentoML's own, on the same route
        # Known label values exist from the start, so rate() sees their first increment.
        'predictions_total{label="REAL"}',
        'predictions_total{label="FAKE"}',
        'inference_out_of_domain_total{reason_kind="size"}',
        'inference_out_of_domain_total{reason_kind="features"}',
        'cache_errors_total{operation="get"}',
        'feedback_total{outcome="incorrect"}',
    ):
        assert name in text, name
    # Resource use and readiness, exported by the service itself (multiprocess mode hides
    # prometheus_client's process_* metrics).
    assert server.metric("service_ready") == 1.0
    assert server.metric("service_cpu_seconds_total") > 0.0
    assert server.metric("service_memory_bytes") > 50e6
    # NVML only where the model runs on a GPU (test_cuda.py); this server runs on the CPU.
    assert "gpu_utilization_percent{" not in text


def test_one_json_log_line_per_inference(server: BentoServer) -> None:
    before = len(server.events("inference"))
    data = unique_jpeg(301)
    body = server.post("/predict", data=data, headers=RAW).json()
    lines = server.events("inference")
    assert len(lines) == before + 1
    line = lines[-1]
    assert line.keys() >= LOG_FIELDS
    assert line["image_id"] == body["image_id"] and line["prediction"] == body["label"]
    assert line["verdict"] == body["verdict"] and line["in_domain"] is body["in_domain"] is True
    assert line["model_version"] == "1" and line["cached"] is False
    assert line["confidence"] == pytest.approx(body["confidence"])


def test_feedback_from_two_sources_updates_the_rolling_model_accuracy(
    server: BentoServer,
) -> None:
    right = server.post("/predict", data=unique_jpeg(302), headers=RAW).json()
    wrong = server.post("/predict", data=unique_jpeg(303), headers=RAW).json()
    also_right = server.post("/predict", data=unique_jpeg(304), headers=RAW).json()
    flip = {"REAL": "FAKE", "FAKE": "REAL"}
    labeller_b = {"X-API-Key": FEEDBACK_KEYS["labeller-b"]}
    first = server.post("/feedback", json={"image_id": right["image_id"], "label": right["label"]})
    assert first.status_code == 200 and first.json()["correct"] is True
    second = server.post(
        "/feedback",
        json={"image_id": wrong["image_id"], "label": flip[wrong["label"]].lower()},
        headers=labeller_b,
    ).json()
    # Labels from two sources (labeller-a, labeller-b): the window counts.
    assert second["correct"] is False and second["sources"] >= second["sources_needed"] == 2
    samples = second["samples"]
    assert samples >= 2
    third = server.post(
        "/feedback", json={"image_id": also_right["image_id"], "label": also_right["label"]}
    ).json()
    expected = (second["model_accuracy"] * samples + 1) / (samples + 1)
    assert third["samples"] == samples + 1
    assert third["model_accuracy"] == pytest.approx(expected)
    assert server.metric("model_accuracy", model_version="1") == pytest.approx(expected)
    assert server.metric("model_accuracy_samples", model_version="1") == samples + 1
    # A corrected label for the same image replaces the earlier one instead of adding to it.
    again = server.post(
        "/feedback",
        json={"image_id": wrong["image_id"], "label": wrong["label"]},
        headers=labeller_b,
    ).json()
    assert again["samples"] == samples + 1 and again["correct"] is True
    assert {e["source"] for e in server.events("feedback")} >= {"labeller-a", "labeller-b"}


def test_feedback_rejects_unknown_image_ids(server: BentoServer) -> None:
    response = server.post("/feedback", json={"image_id": "f" * 64, "label": "FAKE"})
    assert response.status_code == 404
    assert "unknown image_id" in response.json()["error"]


def series(metrics_text: str) -> set[str]:
    """Each sample's name and labels, without its value."""
    return {
        line.rsplit(" ", 1)[0] for line in metrics_text.splitlines() if not line.startswith("#")
    }


def test_random_paths_add_no_metric_series(server: BentoServer) -> None:
    def scan(count: int) -> None:
        with requests.Session() as session:
            for i in range(count):
                path = f"/{secrets.token_hex(8)}/{i}"
                if i % 4 == 0:  # with the key: 404 (or 405) rather than 401
                    session.post(server.url + path, headers=server.headers(), timeout=10)
                else:
                    session.get(server.url + path, timeout=10)

    scan(8)  # the one label for unmatched paths, with each status it can get
    before = server.get("/metrics").text
    scan(1000)
    after = server.get("/metrics").text
    assert series(after) == series(before)
    growth = len(after) / len(before) - 1
    assert growth < 0.05, f"/metrics grew {growth:.1%}: {len(before)} -> {len(after)} bytes"
    endpoints = set(re.findall(r'bentoml_service_request_total\{endpoint="([^"]*)"', after))
    assert "<unmatched>" in endpoints
    assert endpoints <= {"<unmatched>", "/predict", "/predict_batch", "/explain", "/feedback", "/",
                         "/infer_arrays", "/livez", "/readyz", "/healthz", "/schema.json",
                         "/docs.json", "/static_content/{path}"}  # fmt: skip
