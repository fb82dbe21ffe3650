"""deploy/monitoring/alertmanager: the config passes `amtool check-config`, retrain alerts reach
the release receiver (and the people on call), and it authenticates with a mounted token."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from aidetector.config.loading import load_params

from .conftest import REPO

CONFIG = REPO / "deploy" / "monitoring" / "alertmanager" / "alertmanager.yml"
RULES = REPO / "deploy" / "monitoring" / "prometheus" / "alerts.yml"


def run_amtool(amtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([amtool, *args], capture_output=True, text=True, timeout=60, check=False)


def receivers_for(amtool: str, config: Path, alertname: str) -> str:
    result = run_amtool(
        amtool, "config", "routes", "test", f"--config.file={config}", f"alertname={alertname}"
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_config_passes_amtool(amtool: str) -> None:
    result = run_amtool(amtool, "check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_rejects_a_broken_config(amtool: str, tmp_path: Path) -> None:
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(CONFIG.read_text().replace("receiver: retrain", "receiver: retrian"))
    assert run_amtool(amtool, "check-config", str(broken)).returncode != 0


def test_retrain_alerts_go_to_the_receiver_and_every_alert_to_on_call(amtool: str) -> None:
    retrain = load_params(REPO / "params.yaml").release.retrain.alerts
    rules = {r["alert"] for r in yaml.safe_load(RULES.read_text())["groups"][0]["rules"]}
    assert retrain and set(retrain) <= rules, "a retrain alert that no rule raises"
    for name in sorted(rules):
        expected = "retrain,on-call" if name in retrain else "on-call"
        assert receivers_for(amtool, CONFIG, name) == expected, name


def test_the_webhook_posts_to_the_receiver_with_a_mounted_bearer_token() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    [receiver] = [r for r in config["receivers"] if r["name"] == "retrain"]
    [webhook] = receiver["webhook_configs"]
    url = urlsplit(webhook["url"])
    registered = urlsplit(load_params(REPO / "params.yaml").release.webhook_url)
    assert (url.hostname, url.port, url.path) == (
        registered.hostname,
        registered.port,
        "/alertmanager",
    )
    assert webhook["send_resolved"] is False
    auth = webhook["http_config"]["authorization"]
    assert auth["type"] == "Bearer" and "credentials" not in auth
    assert auth["credentials_file"].startswith("/etc/alertmanager/secrets/")
