"""Hostile and bad input through the server: a clear 4xx for each, and it keeps serving.

The reading caps are limits.py's, the pixel cap and decoding checks decoding.py's
(unit-tested in test_decoding.py); both end in the same JSON 4xx."""

from __future__ import annotations

from .conftest import BentoServer, ServingEnv
from .images import bad_inputs, encode, photo


def test_the_whole_bad_input_corpus_gets_4xx_and_the_server_survives(
    server: BentoServer, serving_env: ServingEnv
) -> None:
    failures = []
    for case in bad_inputs(serving_env.settings):
        response = server.post(case.path, **case.kwargs)
        body = response.json() if "json" in response.headers.get("content-type", "") else {}
        if response.status_code != case.status or not body.get("error"):
            failures.append(f"{case.name}: {response.status_code} {response.text[:200]}")
    assert not failures, "\n".join(failures)
    # Still alive and still right afterwards.
    assert server.get("/livez").status_code == 200
    good = server.post(
        "/predict", data=encode(photo(9), "PNG"), headers={"Content-Type": "image/png"}
    )
    assert good.status_code == 200 and good.json()["label"] in ("REAL", "FAKE")
    assert server.metric("inference_errors_total", type="too_many_pixels") >= 2
    assert server.events("rejected")


def test_error_messages_name_the_problem(server: BentoServer, serving_env: ServingEnv) -> None:
    cases = {case.name: case for case in bad_inputs(serving_env.settings)}
    over_cap = server.post("/predict", **cases["over the pixel cap"].kwargs)
    assert "pixels" in over_cap.json()["error"] and "limit" in over_cap.json()["error"]
    big = server.post("/predict", **cases["over the byte cap"].kwargs)
    assert f"limit is {serving_env.settings['max_bytes']} bytes" in big.json()["error"]
    batch = server.post("/predict_batch", **cases["batch with one corrupt image"].kwargs)
    assert batch.json()["error"].startswith("image 1 (f1.bin)")
    budget = server.post("/predict_batch", **cases["over the pixel budget of a request"].kwargs)
    assert (
        f"limit per request is {serving_env.settings['max_request_pixels']}"
        in (budget.json()["error"])
    )
    many = server.post("/predict_batch", **cases["too many images"].kwargs)
    assert f"at most {serving_env.settings['max_batch_images']}" in many.json()["error"]
