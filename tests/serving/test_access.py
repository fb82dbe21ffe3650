"""Keys: required for everything that runs the model, never for health or metrics.

Fail-closed start-up, the feedback scope, rotation, per-source rate limits and the rule that
one source alone cannot move model_accuracy, all on real `bentoml serve` processes.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .conftest import (
    FEEDBACK_KEYS,
    ROTATED_API_KEY,
    BentoServer,
    ServingEnv,
    start_server,
    wait_until,
)
from .images import encode, photo, unique_jpeg

JPEG = encode(photo(11), "JPEG")


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        ("/predict", {"data": JPEG}),
        ("/predict_batch", {"files": {"files": ("a.jpg", JPEG)}}),
        ("/feedback", {"json": {"image_id": "0" * 64, "label": "REAL"}}),
    ],
)
def test_requests_without_the_key_get_401(server: BentoServer, path: str, kwargs: dict) -> None:
    missing = requests.post(server.url + path, timeout=30, **kwargs)
    wrong = requests.post(server.url + path, headers={"X-API-Key": "nope"}, timeout=30, **kwargs)
    for response, word in ((missing, "missing"), (wrong, "invalid")):
        assert response.status_code == 401
        assert response.json()["error"].startswith(f"{word} API key")


def test_a_client_that_sends_its_whole_body_first_reads_the_401(server: BentoServer) -> None:
    # Refused unread, an 8 MB upload without a key got urllib a connection reset, not the 401.
    body = b"\xff" * (8 * 1024 * 1024)
    request = urllib.request.Request(
        server.url + "/predict", data=body, headers={"Content-Type": "image/png"}, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 401
    assert json.loads(refused.value.read())["error"].startswith("missing API key")


def test_the_key_works_as_a_header_or_a_bearer_token(server: BentoServer) -> None:
    header = requests.post(
        server.url + "/predict", data=JPEG, headers={"X-API-Key": server.api_key}, timeout=30
    )
    bearer = requests.post(
        server.url + "/predict",
        data=JPEG,
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=30,
    )
    assert header.status_code == bearer.status_code == 200


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz", "/metrics", "/"])
def test_health_metrics_and_the_page_stay_open(server: BentoServer, path: str) -> None:
    assert requests.get(server.url + path, timeout=30).status_code == 200


def test_the_tensor_api_is_not_reachable_from_outside(server: BentoServer) -> None:
    response = server.post("/infer_arrays", json={"images": [[[[0, 0, 0]]]]})
    assert response.status_code == 404
    assert server.get("/livez").status_code == 200


def test_a_second_api_key_works_during_a_rotation(server: BentoServer) -> None:
    response = requests.post(
        server.url + "/predict", data=JPEG, headers={"X-API-Key": ROTATED_API_KEY}, timeout=30
    )
    assert response.status_code == 200


def test_an_api_key_may_not_send_feedback(server: BentoServer) -> None:
    response = requests.post(
        server.url + "/feedback",
        json={"image_id": "0" * 64, "label": "REAL"},
        headers={"X-API-Key": server.api_key or ""},
        timeout=30,
    )
    assert response.status_code == 403
    assert "feedback key" in response.json()["error"]


def test_a_feedback_key_may_predict_too(server: BentoServer) -> None:
    response = requests.post(
        server.url + "/predict",
        data=JPEG,
        headers={"X-API-Key": FEEDBACK_KEYS["labeller-b"]},
        timeout=30,
    )
    assert response.status_code == 200


def test_feedback_is_rate_limited_per_source(server: BentoServer, serving_env: ServingEnv) -> None:
    verdict = server.post("/predict", data=JPEG).json()
    body = {"image_id": verdict["image_id"], "label": verdict["label"]}
    rate = serving_env.settings["feedback_rate_limit"]
    assert rate == "60/minute"  # conf/serve's default: the test sends one more
    limit = 60
    with requests.Session() as session:
        session.headers["X-API-Key"] = FEEDBACK_KEYS["labeller-c"]
        statuses = [
            session.post(server.url + "/feedback", json=body, timeout=30).status_code
            for _ in range(limit)
        ]
        limited = session.post(server.url + "/feedback", json=body, timeout=30)
    assert statuses == [200] * limit
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 61
    assert "labeller-c" in limited.json()["error"]
    # The limit is per source: another labeller is not held back.
    assert server.post("/feedback", json=body).status_code == 200


def refusal(serving_env: ServingEnv, tmp_path: Path, **keys: str | None) -> tuple[int, str]:
    """Start a server with these keys; return its exit status and output."""
    handle = start_server(
        serving_env.env(AIDETECTOR_MODEL_TAG=serving_env.models["1"].tag),
        tmp_path / "refused.log",
        **keys,  # type: ignore[arg-type]
    )
    try:
        status = handle.process.wait(timeout=120)
    finally:
        handle.stop()
    return status, handle.log_path.read_text()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"api_key": None}, "API_KEY is empty or unset"),
        ({"api_key": "change-me"}, "API_KEY entry 1 has 9 characters"),
        ({"feedback_keys": "no-colon-0123456789abc"}, "FEEDBACK_API_KEYS entry 1 is not"),
    ],
)
def test_the_service_refuses_to_start_without_a_usable_key(
    serving_env: ServingEnv, tmp_path: Path, keys: dict[str, str | None], message: str
) -> None:
    status, output = refusal(serving_env, tmp_path, **keys)
    lines = [line for line in output.splitlines() if line.strip()]
    assert status == 1
    assert lines == [lines[-1]], "one line, no traceback"
    assert lines[-1].startswith("ai-image-detector: refusing to start: " + message)
    assert "change-me" not in output and "0123456789abc" not in output  # no key echoed


@pytest.fixture(scope="module")
def anonymous_server(serving_env: ServingEnv) -> Iterator[BentoServer]:
    """Version 1 with allow_anonymous: true and no keys at all (what `make serve` runs)."""
    overrides = serving_env.root / "anonymous.yaml"
    overrides.write_text("allow_anonymous: true\n")
    env = serving_env.env(
        AIDETECTOR_MODEL_TAG=serving_env.models["1"].tag,
        AIDETECTOR_SERVE_OVERRIDES=str(overrides),
    )
    handle = start_server(env, serving_env.root / "anonymous.log", None, None)
    try:
        wait_until(handle, "/readyz", 200)
        yield handle
    finally:
        handle.stop()


def test_anonymous_access_is_an_explicit_and_logged_opt_out(
    anonymous_server: BentoServer,
) -> None:
    (warning,) = anonymous_server.events("access_anonymous")
    assert warning["level"] == "warning" and warning["anonymous"] is True
    assert "anyone who can reach this service" in warning["hint"]
    assert anonymous_server.post("/predict", data=JPEG).status_code == 200
    wrong = anonymous_server.post("/predict", data=JPEG, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401  # a key that is not valid is never ignored


def test_one_source_alone_cannot_move_model_accuracy(anonymous_server: BentoServer) -> None:
    flip = {"REAL": "FAKE", "FAKE": "REAL"}
    answers = []
    for seed in range(40, 46):  # every label says the model was wrong
        verdict = anonymous_server.post("/predict", data=unique_jpeg(seed)).json()
        body = {"image_id": verdict["image_id"], "label": flip[verdict["label"]]}
        answers.append(anonymous_server.post("/feedback", json=body).json())
    assert all(a["correct"] is False for a in answers)
    assert {(a["sources"], a["sources_needed"], a["samples"]) for a in answers} == {(1, 2, 0)}
    # Still the registered accuracy of the test model, 0.625; no labels behind it.
    assert [a["model_accuracy"] for a in answers] == [pytest.approx(0.625)] * len(answers)
    assert anonymous_server.metric("model_accuracy", model_version="1") == pytest.approx(0.625)
    assert anonymous_server.metric("model_accuracy_samples", model_version="1") == 0
    assert anonymous_server.metric("feedback_total", outcome="incorrect") == len(answers)
