"""Hostile and bad input through the server: a clear 4xx for each, and it keeps serving.

The reading caps are limits.py's, the pixel cap and decoding checks decoding.py's
(unit-tested in test_decoding.py); both end in the same JSON 4xx."""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.types import Message, Receive

from aidetector.config.serve import ServeSettings
from aidetector.serving.limits import UploadIOError, read_uploads
from aidetector.serving.routes import upload_failed

from .conftest import API_KEY, BentoServer, ServingEnv
from .images import MULTIPART, RAW, bad_inputs, encode, multipart, photo


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


def test_a_client_that_sends_the_whole_body_first_reads_the_413(
    server: BentoServer, serving_env: ServingEnv
) -> None:
    # urllib, like requests and most SDKs, sends the whole body before reading the reply;
    # refused unread, a body over the limit got it a connection reset instead of the 413.
    limit = serving_env.settings["max_batch_bytes"]
    body = multipart([("files", b"\xff" * (limit * 5 // 2))])
    declared = {**server.headers(), **MULTIPART}

    def chunked() -> Iterator[bytes]:  # no Content-Length: caught while streaming
        yield from (body[i : i + 65536] for i in range(0, len(body), 65536))

    for data in (body, chunked()):
        request = urllib.request.Request(
            server.url + "/predict_batch", data=data, headers=declared, method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=60)
        assert refused.value.code == 413
        assert f"the limit is {limit} bytes" in json.loads(refused.value.read())["error"]


def samples(server: BentoServer, name: str) -> dict[str, float]:
    """Every sample of a metric on /metrics: labels text -> value."""
    found = {}
    for line in server.get("/metrics").text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line.rsplit(" ", 1)
            found[labels] = float(value)
    return found


def server_errors(server: BentoServer) -> float:
    """5xx answers so far, as the service and BentoML count them."""
    ours = samples(server, "inference_requests_total")
    bentoml = samples(server, "bentoml_service_request_total")
    return sum(v for k, v in ours.items() if 'status="5' in k) + sum(
        v for k, v in bentoml.items() if 'http_response_code="5' in k
    )


def test_a_client_that_leaves_mid_upload_is_a_499_not_a_5xx(server: BentoServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    before = server.metric("inference_requests_total", endpoint="predict", status="499") or 0.0
    errors_before = server_errors(server)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\n"
            + f"X-API-Key: {API_KEY}\r\nContent-Length: 200000\r\n\r\n".encode()
            + b"\x89PNG" * 25_000  # half the declared body, then the client is gone
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        counted = server.metric("inference_requests_total", endpoint="predict", status="499")
        if counted == before + 1:
            break
        time.sleep(0.1)
    assert counted == before + 1
    assert server_errors(server) == errors_before
    gone = server.events("client_disconnected")[-1]
    assert gone["level"] == "info" and gone["received_bytes"] == 100_000
    assert not server.events("error")  # the only path that reports to Sentry


def receive_from(messages: list[Message]) -> Receive:
    """An ASGI receive callable that hands out messages, then raises what is left."""

    async def receive() -> Message:
        item = messages.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    return receive


def asgi_request(headers: dict[str, str], receive: Receive) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict_batch",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    return Request(scope, receive)


def test_multipart_uploads_never_touch_the_disk(
    serving_env: ServingEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Starlette's own parser spools a file part over 1 MiB to a temporary file; with no
    # usable temporary directory, that would fail.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    settings = ServeSettings.from_mapping(serving_env.settings)
    image = b"\x89PNG" * (settings.max_bytes // 4)  # max_bytes, several times 1 MiB
    body = multipart([("files", image)])
    receive = receive_from([{"type": "http.request", "body": body, "more_body": False}])
    request = asgi_request({**MULTIPART, "Content-Length": str(len(body))}, receive)
    uploads = asyncio.run(read_uploads(request, settings, batch=True))
    assert [upload.data for upload in uploads] == [image]


def test_an_io_error_while_receiving_is_a_503_to_retry(serving_env: ServingEnv) -> None:
    settings = ServeSettings.from_mapping(serving_env.settings)
    first = {"type": "http.request", "body": b"\x89PNG" * 1000, "more_body": True}
    # What a transport that fails under the application raises (here: a full disk).
    receive = receive_from([first, OSError(errno.ENOSPC, "No space left on device")])
    request = asgi_request(RAW, receive)
    with pytest.raises(UploadIOError, match="No space left on device"):
        asyncio.run(read_uploads(request, settings, batch=False))
    response = upload_failed("predict", UploadIOError("No space left on device"))
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
