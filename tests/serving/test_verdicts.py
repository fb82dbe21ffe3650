"""The out-of-domain flag on every verdict, through the real server, Redis and tiny models.

The tiny models' domain profile was fitted on noise photos of images.TRAINING_SIZE (48x40),
with a size tolerance of 2: unique_jpeg is in domain, oversized_jpeg (8x per side) is out
by its size, and black_png (the right size, nothing like noise) is out by its features.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .conftest import BentoServer
from .images import MULTIPART, RAW, black_png, multipart, oversized_jpeg, unique_jpeg

OUT_OF_DOMAIN = "inference_out_of_domain_total"


def flagged(server: BentoServer, kind: str) -> float:
    return server.metric(OUT_OF_DOMAIN, reason_kind=kind) or 0.0


def assert_in_domain(body: dict[str, Any]) -> None:
    assert body["in_domain"] is True, body
    assert body["verdict"] == body["label"] and body["label"] in ("REAL", "FAKE")
    assert body["reason"] is None


def assert_uncertain_by_size(body: dict[str, Any]) -> None:
    assert body["in_domain"] is False, body
    assert body["verdict"] == "UNCERTAIN"
    assert body["label"] in ("REAL", "FAKE")  # the guess stays, for older clients
    assert "384x320 px" in body["reason"], body["reason"]
    assert "sides of 40 to 48 px" in body["reason"], body["reason"]
    assert body["reason"][0].isupper() and body["reason"].endswith(".")


def test_an_image_like_the_training_data_is_in_domain(server: BentoServer) -> None:
    for index in range(400, 405):
        response = server.post("/predict", data=unique_jpeg(index), headers=RAW)
        assert response.status_code == 200, response.text
        assert_in_domain(response.json())


def test_an_image_far_larger_than_training_is_uncertain_also_from_the_cache(
    server: BentoServer,
) -> None:
    before = flagged(server, "size"), flagged(server, "features")
    data = oversized_jpeg(1)
    first = server.post("/predict", data=data, headers=RAW).json()
    second = server.post("/predict", data=data, headers=RAW).json()
    assert (first["cached"], second["cached"]) == (False, True)
    for body in (first, second):
        assert_uncertain_by_size(body)
    assert second["reason"] == first["reason"] and second["label"] == first["label"]
    # Once per flagged verdict, cached ones included.
    assert (flagged(server, "size"), flagged(server, "features")) == (before[0] + 2, before[1])


def test_an_image_unlike_the_training_data_is_uncertain_by_its_features(
    server: BentoServer,
) -> None:
    before = flagged(server, "features")
    body = server.post("/predict", data=black_png(1), headers=RAW).json()
    assert body["in_domain"] is False and body["verdict"] == "UNCERTAIN", body
    assert body["reason"].startswith("The image is unlike the training data"), body
    assert "99th percentile of validation images." in body["reason"], body
    assert flagged(server, "features") == before + 1


def test_a_mixed_batch_flags_each_image_in_order_also_from_the_cache(
    server: BentoServer,
) -> None:
    images = [unique_jpeg(410), oversized_jpeg(2), unique_jpeg(411), black_png(2)]
    body = multipart([("files", data) for data in images])
    before = flagged(server, "size"), flagged(server, "features")
    answers = []
    for _ in range(2):
        response = server.post("/predict_batch", data=body, headers=MULTIPART)
        assert response.status_code == 200, response.text
        answers.append(response.json()["results"])
    for results, cached in zip(answers, (False, True), strict=True):
        assert [r["image_id"] for r in results] == [hashlib.sha256(d).hexdigest() for d in images]
        assert [r["cached"] for r in results] == [cached] * 4
        assert [r["verdict"] == "UNCERTAIN" for r in results] == [False, True, False, True]
        assert_in_domain(results[0])
        assert_uncertain_by_size(results[1])
        assert_in_domain(results[2])
        assert "unlike the training data" in results[3]["reason"]
    assert answers[1] == [{**r, "cached": True, "latency_ms": c["latency_ms"]}
                          for r, c in zip(answers[0], answers[1], strict=True)]  # fmt: skip
    after = flagged(server, "size"), flagged(server, "features")
    assert after == (before[0] + 2, before[1] + 2)


def test_the_inference_log_line_carries_the_verdict(server: BentoServer) -> None:
    data = oversized_jpeg(3)
    body = server.post("/predict", data=data, headers=RAW).json()
    line = next(
        e for e in reversed(server.events("inference")) if e["image_id"] == body["image_id"]
    )
    assert line["verdict"] == "UNCERTAIN" and line["in_domain"] is False
    assert line["prediction"] == body["label"]


def test_feedback_on_an_uncertain_verdict_compares_the_label(server: BentoServer) -> None:
    body = server.post("/predict", data=oversized_jpeg(4), headers=RAW).json()
    assert body["verdict"] == "UNCERTAIN"
    answer = server.post("/feedback", json={"image_id": body["image_id"], "label": body["label"]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["prediction"] == body["label"] and answer.json()["correct"] is True
