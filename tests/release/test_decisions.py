"""Which events release, which retrain, and which are ignored, with the reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aidetector.config.release import ReleaseSettings
from aidetector.release.decisions import PayloadError, decide_alertmanager, decide_mlflow

from .conftest import REGISTERED_MODEL, release_config


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> ReleaseSettings:
    return release_config(tmp_path_factory.mktemp("cfg"), "http://127.0.0.1:9").release


def alias_event(name: str = REGISTERED_MODEL, alias: str = "champion", version: str = "3") -> bytes:
    data = {"name": name, "alias": alias, "version": version}
    body = {"entity": "model_version_alias", "action": "created", "timestamp": "t", "data": data}
    return json.dumps(body).encode()


def notification(*alerts: tuple[str, str], status: str = "firing") -> bytes:
    body: dict[str, Any] = {
        "version": "4",
        "status": status,
        "receiver": "retrain",
        "groupKey": '{}:{alertname="AIDetectorAccuracyDropped"}',
        "alerts": [
            {"status": s, "labels": {"alertname": name, "severity": "page"}, "annotations": {}}
            for name, s in alerts
        ],
    }
    return json.dumps(body).encode()


def test_the_configured_model_follows_the_registry_name(settings: ReleaseSettings) -> None:
    assert settings.registered_model == REGISTERED_MODEL and settings.alias == "champion"


def test_a_champion_move_releases_that_version(settings: ReleaseSettings) -> None:
    decision = decide_mlflow(alias_event(version="7"), settings, "d-1")
    assert decision.action == "release"
    assert decision.payload == {
        "registered_model": REGISTERED_MODEL,
        "version": "7",
        "alias": "champion",
        "delivery_id": "d-1",
        "source": "mlflow-webhook",
    }


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (alias_event(alias="challenger"), "alias 'challenger' is not 'champion'"),
        (alias_event(name="other-model"), "registered model 'other-model'"),
        (
            json.dumps({"entity": "model_version", "action": "created", "data": {}}).encode(),
            "model_version.created is not an alias move",
        ),
    ],
)
def test_other_events_are_ignored_with_a_reason(
    settings: ReleaseSettings, body: bytes, reason: str
) -> None:
    decision = decide_mlflow(body, settings, "d-1")
    assert decision.action == "ignore" and reason in decision.reason


def test_another_alias_releases_when_configured(tmp_path: Path) -> None:
    settings = release_config(tmp_path, "http://127.0.0.1:9", "release.alias=production").release
    assert decide_mlflow(alias_event(alias="production"), settings, "d").action == "release"
    assert decide_mlflow(alias_event(alias="champion"), settings, "d").action == "ignore"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        json.dumps({"entity": "model_version_alias", "action": "created"}).encode(),
        json.dumps(
            {"entity": "model_version_alias", "action": "created", "data": {"name": "m"}}
        ).encode(),
    ],
)
def test_a_malformed_event_is_a_payload_error(settings: ReleaseSettings, body: bytes) -> None:
    with pytest.raises(PayloadError, match="not an "):
        decide_mlflow(body, settings, "d-1")


def test_a_firing_retrain_alert_retrains(settings: ReleaseSettings) -> None:
    body = notification(("AIDetectorAccuracyDropped", "firing"), ("Other", "firing"))
    decision = decide_alertmanager(body, settings, last_retrain=None, now=1000.0)
    assert decision.action == "retrain"
    assert decision.payload["alerts"] == "AIDetectorAccuracyDropped"
    assert decision.payload["source"] == "alertmanager"
    assert decision.payload["registered_model"] == REGISTERED_MODEL


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (notification(("AIDetectorAccuracyDropped", "resolved"), status="resolved"), "resolved"),
        (notification(("AIDetectorHighP99Latency", "firing")), "AIDetectorHighP99Latency"),
    ],
)
def test_resolved_and_other_alerts_do_not_retrain(
    settings: ReleaseSettings, body: bytes, reason: str
) -> None:
    decision = decide_alertmanager(body, settings, last_retrain=None, now=1000.0)
    assert decision.action == "ignore" and reason in decision.reason


def test_a_repeated_alert_within_the_cooldown_does_not_retrain_again(
    settings: ReleaseSettings,
) -> None:
    body = notification(("AIDetectorAccuracyDropped", "firing"))
    cooldown = settings.retrain.cooldown_s
    inside = decide_alertmanager(body, settings, last_retrain=0.0, now=cooldown - 1)
    assert inside.action == "ignore" and "cooldown" in inside.reason
    assert decide_alertmanager(body, settings, last_retrain=0.0, now=cooldown).action == "retrain"
