"""The API key: required for everything that runs the model, never for health or metrics."""

from __future__ import annotations

import pytest
import requests

from .conftest import BentoServer
from .images import encode, photo

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
