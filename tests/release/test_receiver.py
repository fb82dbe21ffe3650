"""The receiver over HTTP (Starlette's test client), its dispatches going to a real local
HTTP server in GitHub's place: what it accepts, what it refuses, and what it logs."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from aidetector.config.release import ReleaseSettings
from aidetector.release.github import GitHubDispatcher
from aidetector.release.receiver import create_app
from aidetector.release.signature import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)

from .conftest import (
    ALERTMANAGER_TOKEN,
    GITHUB_TOKEN,
    REGISTERED_MODEL,
    REPOSITORY,
    WEBHOOK_SECRET,
    FakeGitHub,
    JsonLines,
    release_config,
    release_secrets,
)
from .test_decisions import alias_event, notification


@pytest.fixture
def settings(tmp_path: Path, fake_github: FakeGitHub) -> ReleaseSettings:
    return release_config(tmp_path, fake_github.url).release


def make_client(settings: ReleaseSettings, alertmanager: bool = True) -> TestClient:
    secrets = release_secrets(alertmanager)
    dispatcher = GitHubDispatcher(settings.github, settings.repository(), secrets.github_token)
    return TestClient(create_app(settings, secrets, dispatcher))


@pytest.fixture
def client(settings: ReleaseSettings) -> Iterator[TestClient]:
    with make_client(settings) as test_client:
        yield test_client


def signed(
    body: bytes,
    secret: str = WEBHOOK_SECRET,
    delivery_id: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    delivery_id = delivery_id or str(uuid.uuid4())
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/json",
        DELIVERY_ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: sign(secret, delivery_id, stamp, body),
    }


def test_a_signed_champion_move_sends_the_release_event(
    client: TestClient, fake_github: FakeGitHub, decision_log: JsonLines
) -> None:
    body = alias_event(version="4")
    headers = signed(body, delivery_id="delivery-1")
    response = client.post("/mlflow", content=body, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["decision"] == "released"
    [sent] = fake_github.requests
    assert sent.path == f"/repos/{REPOSITORY}/dispatches"
    assert sent.headers["Authorization"] == f"Bearer {GITHUB_TOKEN}"
    assert sent.headers["Accept"] == "application/vnd.github+json"
    assert sent.body == {
        "event_type": "model-release",
        "client_payload": {
            "registered_model": REGISTERED_MODEL,
            "version": "4",
            "alias": "champion",
            "delivery_id": "delivery-1",
            "source": "mlflow-webhook",
        },
    }
    [line] = decision_log.lines
    assert line["event"] == "webhook_decision" and line["decision"] == "released"
    assert line["version"] == "4" and line["status"] == 202
    text = json.dumps(decision_log.lines)
    assert WEBHOOK_SECRET not in text and GITHUB_TOKEN not in text
    assert headers[SIGNATURE_HEADER] not in text


@pytest.mark.parametrize(
    ("case", "check"),
    [
        ("unsigned", "unsigned"),
        ("wrong secret", "bad_signature"),
        ("tampered body", "bad_signature"),
        ("stale", "stale"),
    ],
)
def test_unsigned_wrongly_signed_and_stale_events_are_refused(
    client: TestClient, fake_github: FakeGitHub, decision_log: JsonLines, case: str, check: str
) -> None:
    body = alias_event()
    headers = {
        "unsigned": {"Content-Type": "application/json"},
        "wrong secret": signed(body, secret="z" * 40),
        "tampered body": signed(alias_event(version="99")),
        "stale": signed(body, timestamp=int(time.time()) - 301),
    }[case]
    response = client.post("/mlflow", content=body, headers=headers)
    assert response.status_code == 401
    assert fake_github.requests == []
    [line] = decision_log.lines
    assert (line["decision"], line["check"], line["level"]) == ("refused", check, "warning")


def test_a_replayed_event_is_refused(client: TestClient, fake_github: FakeGitHub) -> None:
    body = alias_event()
    headers = signed(body)
    assert client.post("/mlflow", content=body, headers=headers).status_code == 202
    replay = client.post("/mlflow", content=body, headers=headers)
    assert replay.status_code == 409 and "already received" in replay.json()["reason"]
    assert len(fake_github.requests) == 1


def test_another_alias_is_acknowledged_but_not_released(
    client: TestClient, fake_github: FakeGitHub, decision_log: JsonLines
) -> None:
    body = alias_event(alias="challenger")
    response = client.post("/mlflow", content=body, headers=signed(body))
    assert response.status_code == 200 and response.json()["decision"] == "ignored"
    assert fake_github.requests == []
    assert decision_log.lines[0]["alias"] == "challenger"


def test_a_github_failure_is_a_502_and_mlflows_retry_counts(
    client: TestClient, fake_github: FakeGitHub, decision_log: JsonLines
) -> None:
    body = alias_event()
    headers = signed(body)
    fake_github.status = 401
    failed = client.post("/mlflow", content=body, headers=headers)
    assert failed.status_code == 502
    assert "GitHub API answered 401" in failed.json()["reason"]
    assert "Bad credentials" in failed.json()["reason"]
    fake_github.status = 204
    # MLflow retries a 5xx with the same delivery id and timestamp.
    assert client.post("/mlflow", content=body, headers=headers).status_code == 202
    assert [line["decision"] for line in decision_log.lines] == ["failed", "released"]


def test_a_signed_body_that_is_not_an_event_is_a_400(
    client: TestClient, fake_github: FakeGitHub
) -> None:
    body = b'{"entity": "model_version_alias", "action": "created"}'
    response = client.post("/mlflow", content=body, headers=signed(body))
    assert response.status_code == 400 and "data" in response.json()["reason"]
    assert fake_github.requests == []


def test_an_oversized_body_is_refused_before_it_is_read(
    client: TestClient, settings: ReleaseSettings
) -> None:
    body = b"{" + b" " * settings.max_body_bytes + b"}"
    assert client.post("/mlflow", content=body, headers=signed(body)).status_code == 413


def bearer(token: str = ALERTMANAGER_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def test_a_firing_alert_from_alertmanager_starts_retrain_once(
    client: TestClient, fake_github: FakeGitHub, decision_log: JsonLines
) -> None:
    body = notification(("AIDetectorAccuracyDropped", "firing"))
    response = client.post("/alertmanager", content=body, headers=bearer())
    assert response.status_code == 202 and response.json()["decision"] == "retrain"
    [sent] = fake_github.requests
    assert sent.path == f"/repos/{REPOSITORY}/dispatches"
    assert sent.headers["Authorization"] == f"Bearer {GITHUB_TOKEN}"
    assert sent.body["event_type"] == "retrain"
    assert sent.body["client_payload"]["alerts"] == "AIDetectorAccuracyDropped"
    # Alertmanager repeats a firing alert every repeat_interval: one retrain per cooldown.
    again = client.post("/alertmanager", content=body, headers=bearer())
    assert again.status_code == 200 and "cooldown" in again.json()["reason"]
    assert len(fake_github.requests) == 1
    assert [line["decision"] for line in decision_log.lines] == ["retrain", "ignored"]


def test_a_resolved_alert_does_not_retrain(client: TestClient, fake_github: FakeGitHub) -> None:
    body = notification(("AIDetectorAccuracyDropped", "resolved"), status="resolved")
    response = client.post("/alertmanager", content=body, headers=bearer())
    assert response.status_code == 200 and response.json()["decision"] == "ignored"
    assert fake_github.requests == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong-" + ALERTMANAGER_TOKEN),
        {"Authorization": f"Basic {ALERTMANAGER_TOKEN}"},
        # An HMAC-signed MLflow delivery is not Alertmanager's credential.
        signed(notification(("AIDetectorAccuracyDropped", "firing"))),
    ],
)
def test_alertmanager_needs_its_bearer_token(
    client: TestClient, fake_github: FakeGitHub, headers: dict[str, str]
) -> None:
    body = notification(("AIDetectorAccuracyDropped", "firing"))
    assert client.post("/alertmanager", content=body, headers=headers).status_code == 401
    assert fake_github.requests == []


def test_the_alertmanager_route_is_off_without_a_token(
    settings: ReleaseSettings, fake_github: FakeGitHub
) -> None:
    body = notification(("AIDetectorAccuracyDropped", "firing"))
    with make_client(settings, alertmanager=False) as client:
        response = client.post("/alertmanager", content=body, headers=bearer())
    assert response.status_code == 404 and "ALERTMANAGER_TOKEN" in response.json()["reason"]
    assert fake_github.requests == []


def test_a_malformed_alertmanager_body_is_a_400(client: TestClient) -> None:
    response = client.post("/alertmanager", content=b'{"version": "4"}', headers=bearer())
    assert response.status_code == 400


def test_livez_answers(client: TestClient) -> None:
    assert client.get("/livez").text == "ok"
