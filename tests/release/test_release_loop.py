"""The release loop end to end on 127.0.0.1: a real `mlflow server` on SQLite delivers its
signed webhook to the real receiver process, which sends repository_dispatch to a local HTTP
server standing in for GitHub's API. The alias moves as the MLflow UI moves it (MlflowClient),
by `aidetector promote --version`, and by `aidetector promote --rollback`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet
from mlflow.tracking import MlflowClient

from aidetector.cli import main
from aidetector.release.signature import DELIVERY_ID_HEADER
from conftest import PROJECT_ROOT
from mlflow_process import free_port, run_mlflow_server, stop_process_group, wait_until_healthy

from .conftest import (
    ALERTMANAGER_TOKEN,
    GITHUB_TOKEN,
    REGISTERED_MODEL,
    REPOSITORY,
    WEBHOOK_SECRET,
    FakeGitHub,
    serve_fake_github,
)
from .test_decisions import alias_event, notification
from .test_receiver import signed

# What the tracking server needs to post to a receiver on a private http address, and to read
# the webhook secret it stored (the same key in every worker and after a restart).
SERVER_ENV = {
    "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
    "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
    "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode(),
}


@dataclass
class Receiver:
    """The running `aidetector webhook serve` process: its URL and its JSON log."""

    url: str
    log_path: Path

    def decisions(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text().splitlines()
        events = [json.loads(line) for line in lines if line.startswith("{")]
        return [event for event in events if event["event"] == "webhook_decision"]


@dataclass
class Loop:
    tracking_uri: str
    receiver: Receiver
    github: FakeGitHub


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    """Start GitHub's stand-in, the receiver and the tracking server (the last two at once)."""
    root = tmp_path_factory.mktemp("release-loop")
    port = free_port()
    with serve_fake_github() as github:
        log_path = root / "receiver.log"
        env = {
            **os.environ,
            "AIDETECTOR_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "GITHUB_TOKEN": GITHUB_TOKEN,
            "ALERTMANAGER_TOKEN": ALERTMANAGER_TOKEN,
        }
        command = [
            sys.executable,
            "-m",
            "aidetector.cli",
            "webhook",
            "serve",
            f"registry.name={REGISTERED_MODEL}",
            f"release.github.api_url={github.url}",
            f"release.github.repository={REPOSITORY}",
            f"release.port={port}",
        ]
        with log_path.open("w") as log:
            process = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            with run_mlflow_server(root, SERVER_ENV) as uri:
                url = f"http://127.0.0.1:{port}"
                wait_until_healthy(process, f"{url}/livez", log_path, "webhook receiver")
                yield Loop(uri, Receiver(url, log_path), github)
        finally:
            stop_process_group(process)


@pytest.fixture(scope="module")
def client(loop: Loop) -> MlflowClient:
    """The registered model with two versions, as the UI's user would have them."""
    client = MlflowClient(tracking_uri=loop.tracking_uri, registry_uri=loop.tracking_uri)
    client.create_registered_model(REGISTERED_MODEL)
    run = client.create_run(client.create_experiment("release-loop"))
    for _ in range(2):
        client.create_model_version(
            REGISTERED_MODEL, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
        )
    return client


def cli(
    monkeypatch: pytest.MonkeyPatch, loop: Loop, capsys: pytest.CaptureFixture[str], *args: str
) -> str:
    """Run `aidetector ARGS` in-process against the loop's server; return its output."""
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", loop.tracking_uri)
    monkeypatch.setenv("AIDETECTOR_WEBHOOK_SECRET", WEBHOOK_SECRET)
    # Overrides go before the options: argparse takes positionals in one run.
    words = 2 if args[0] == "webhook" else 1
    code = main([*args[:words], f"registry.name={REGISTERED_MODEL}", *args[words:]])
    output = capsys.readouterr()
    assert code == 0, output.err
    return output.out


def assert_release(request: Any, version: str) -> None:
    assert request.path == f"/repos/{REPOSITORY}/dispatches"
    assert request.headers["Authorization"] == f"Bearer {GITHUB_TOKEN}"
    assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"
    body = request.body
    assert body["event_type"] == "model-release"
    payload = body["client_payload"]
    assert (payload["registered_model"], payload["version"], payload["alias"]) == (
        REGISTERED_MODEL,
        version,
        "champion",
    )
    assert payload["source"] == "mlflow-webhook" and payload["delivery_id"]


def test_install_registers_a_signed_webhook_that_the_receiver_verifies(
    loop: Loop, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{loop.receiver.url}/mlflow"
    first = cli(monkeypatch, loop, capsys, "webhook", "install", "--url", url)
    assert "created webhook 'aidetector-release'" in first
    assert "test event delivered: the receiver answered 200" in first
    # Installing again updates the one webhook instead of adding a second.
    again = cli(monkeypatch, loop, capsys, "webhook", "install", "--url", url)
    assert "updated webhook" in again
    webhooks = MlflowClient(tracking_uri=loop.tracking_uri).list_webhooks()
    assert [(w.name, w.url) for w in webhooks] == [("aidetector-release", url)]
    [event] = webhooks[0].events
    assert (event.entity.value, event.action.value) == ("model_version_alias", "created")
    # MLflow's test event was signed, verified, and ignored (example_model is not ours).
    tests = [d for d in loop.receiver.decisions() if d.get("registered_model") == "example_model"]
    assert [d["decision"] for d in tests] == ["ignored", "ignored"]
    assert loop.github.requests == []


def test_moving_champion_in_the_ui_releases_that_version(loop: Loop, client: MlflowClient) -> None:
    client.set_registered_model_alias(REGISTERED_MODEL, "champion", "1")  # what the UI calls
    [request] = loop.github.wait_for(1)
    assert_release(request, "1")


def test_promote_and_rollback_release_the_same_way(
    loop: Loop,
    client: MlflowClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client.set_registered_model_alias(REGISTERED_MODEL, "challenger", "2")  # ignored
    assert "version 2 is now the champion" in cli(
        monkeypatch, loop, capsys, "promote", "--version", "2"
    )
    assert_release(loop.github.wait_for(2)[1], "2")
    rolled = cli(monkeypatch, loop, capsys, "promote", "--rollback")
    assert "rolled back from version 2 to version 1" in rolled
    assert_release(loop.github.wait_for(3)[2], "1")
    deadline = time.monotonic() + 10
    while not any(d.get("alias") == "challenger" for d in loop.receiver.decisions()):
        assert time.monotonic() < deadline, "the challenger move never reached the receiver"
        time.sleep(0.1)
    [challenger] = [d for d in loop.receiver.decisions() if d.get("alias") == "challenger"]
    assert challenger["decision"] == "ignored" and challenger["status"] == 200
    assert len(loop.github.requests) == 3


def test_the_receiver_refuses_wrongly_signed_and_replayed_events(loop: Loop) -> None:
    before = len(loop.github.requests)
    url = f"{loop.receiver.url}/mlflow"
    body = alias_event(name=REGISTERED_MODEL, version="2")
    forged = requests.post(url, data=body, headers=signed(body, secret="f" * 40), timeout=10)
    assert forged.status_code == 401
    unsigned = requests.post(url, data=body, timeout=10)
    assert unsigned.status_code == 401
    stale = signed(body, timestamp=int(time.time()) - 3600)
    assert requests.post(url, data=body, headers=stale, timeout=10).status_code == 401
    # A correctly signed delivery, sent twice: the second is a replay.
    headers = signed(body)
    assert requests.post(url, data=body, headers=headers, timeout=10).status_code == 202
    replay = requests.post(url, data=body, headers=headers, timeout=10)
    assert replay.status_code == 409
    assert len(loop.github.wait_for(before + 1)) == before + 1
    refused = [d for d in loop.receiver.decisions() if d["decision"] == "refused"]
    assert [d.get("check") for d in refused][-4:] == [
        "bad_signature",
        "unsigned",
        "stale",
        "replayed",
    ]
    assert refused[-1]["delivery_id"] == headers[DELIVERY_ID_HEADER]


def test_an_alertmanager_alert_starts_retrain(loop: Loop) -> None:
    before = len(loop.github.requests)
    body = notification(("AIDetectorAccuracyDropped", "firing"))
    headers = {"Authorization": f"Bearer {ALERTMANAGER_TOKEN}"}
    url = f"{loop.receiver.url}/alertmanager"
    assert requests.post(url, data=body, timeout=10).status_code == 401
    response = requests.post(url, data=body, headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    request = loop.github.wait_for(before + 1)[-1]
    assert request.headers["Authorization"] == f"Bearer {GITHUB_TOKEN}"
    assert request.body["event_type"] == "retrain"
    assert request.body["client_payload"]["alerts"] == "AIDetectorAccuracyDropped"


def test_every_decision_is_one_json_line_without_secrets(loop: Loop) -> None:
    text = loop.receiver.log_path.read_text()
    for secret in (WEBHOOK_SECRET, GITHUB_TOKEN, ALERTMANAGER_TOKEN):
        assert secret not in text
    decisions = loop.receiver.decisions()
    assert {"timestamp", "level", "source", "decision", "reason", "status"} <= set(decisions[0])
    released = [d for d in decisions if d["decision"] == "released"]
    assert [d["version"] for d in released] == ["1", "2", "1", "2"]
