"""A local HTTP server standing in for GitHub's REST API, and the receiver's settings.

The fake answers POST /repos/OWNER/REPO/dispatches as GitHub does (204, or the status a test
sets) and records each request's path, headers and JSON body for the test to assert.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from aidetector.config.release import ReleaseSecrets
from aidetector.config.schema import RunConfig
from aidetector.serving.logging_json import LOGGER_NAME, JsonFormatter
from conftest import tiny_config

REPOSITORY = "acme/detector"
REGISTERED_MODEL = "release-test-model"
WEBHOOK_SECRET = "whsec-" + "a1" * 16
GITHUB_TOKEN = "ghp_test_" + "b2" * 16
ALERTMANAGER_TOKEN = "am-" + "c3" * 16


@dataclass(frozen=True)
class Recorded:
    """One request GitHub's stand-in received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeGitHub:
    """The stand-in's address, what it received, and the status it answers with."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    status: int = 204

    def wait_for(self, count: int, timeout_s: float = 20.0) -> list[Recorded]:
        """Return the requests once there are count of them (fail after timeout_s)."""
        deadline = time.monotonic() + timeout_s
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"GitHub got {len(self.requests)} requests, expected {count}")
            time.sleep(0.05)
        return list(self.requests)


@contextmanager
def serve_fake_github() -> Iterator[FakeGitHub]:
    """Serve GitHub's dispatches endpoint on 127.0.0.1 until the block ends."""
    state = FakeGitHub(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            state.requests.append(
                Recorded("POST", self.path, dict(self.headers.items()), json.loads(raw or b"{}"))
            )
            self.send_response(state.status)
            if state.status == 204:
                self.end_headers()
                return
            body = json.dumps({"message": "Bad credentials"}).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    """GitHub's stand-in for one test."""
    with serve_fake_github() as state:
        yield state


def release_config(tmp_path: Path, github_url: str, *overrides: str) -> RunConfig:
    """Return the real config with the receiver pointed at the stand-in and the test model."""
    return tiny_config(
        tmp_path,
        f"registry.name={REGISTERED_MODEL}",
        f"release.github.api_url={github_url}",
        f"release.github.repository={REPOSITORY}",
        *overrides,
    )


def release_secrets(alertmanager: bool = True) -> ReleaseSecrets:
    return ReleaseSecrets(
        webhook_secrets=(WEBHOOK_SECRET,),
        github_token=GITHUB_TOKEN,
        alertmanager_tokens=(ALERTMANAGER_TOKEN,) if alertmanager else (),
    )


class JsonLines(logging.Handler):
    """Collects the receiver's JSON log lines, formatted as they are written."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def decision_log() -> Iterator[JsonLines]:
    """The JSON lines the receiver logs during one test."""
    handler = JsonLines()
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
