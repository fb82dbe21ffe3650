"""deploy/monitoring: the alert rules pass promtool (check and unit tests), and the Grafana
dashboard loads with the panels the runbook describes. That every queried metric is one the
service exports is checked against a live scrape in tests/serving/test_monitoring_contract.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import REPO

MONITORING = REPO / "deploy" / "monitoring"
RULES = MONITORING / "prometheus" / "alerts.yml"
RULE_TESTS = MONITORING / "prometheus" / "alerts.test.yml"
DASHBOARD = MONITORING / "grafana" / "ai-image-detector.json"


def run_promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_alert_rules_pass_promtool_check(promtool: str) -> None:
    result = run_promtool(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


def test_alert_rules_fire_as_their_unit_tests_expect(promtool: str) -> None:
    result = run_promtool(promtool, "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(RULES.read_text().replace("> 0.02", "> > 0.02", 1))
    assert run_promtool(promtool, "check", "rules", str(broken)).returncode != 0


def test_every_required_alert_exists_and_is_unit_tested() -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    names = {rule["alert"] for rule in rules}
    assert names == {
        "AIDetectorHighErrorRate",
        "AIDetectorHighP99Latency",
        "AIDetectorAccuracyDropped",
        "AIDetectorTooFewReadyReplicas",
        "AIDetectorGPUSaturated",
        "AIDetectorInputDrift",
    }
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert tested == names
    assert all(rule["labels"]["severity"] in {"page", "warning"} for rule in rules)


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def test_dashboard_loads_with_the_promised_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "ai-image-detector"
    titles = " | ".join(panel["title"] for panel in panels(dashboard)).lower()
    for topic in (
        "requests per second",
        "latency p50 / p95 / p99",
        "error rate",
        "cache hit ratio",
        "predictions by label",
        "out-of-domain share",
        "input drift",
        "model accuracy",
        "model version",
        "batch size",
        "gpu",
        "cpu",
        "memory",
    ):
        assert topic in titles, topic
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"] and target["datasource"]["uid"] == "${datasource}"
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]


@pytest.mark.parametrize("quantile", ["0.5", "0.95", "0.99"])
def test_latency_panel_shows_each_quantile(quantile: str) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    latency = next(p for p in panels(dashboard) if p["title"].startswith("Latency"))
    assert any(f"histogram_quantile({quantile}," in t["expr"] for t in latency["targets"])


def test_out_of_domain_share_divides_flagged_by_all_verdicts() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    share = next(p for p in panels(dashboard) if p["title"] == "Out-of-domain share")
    assert share["fieldConfig"]["defaults"]["unit"] == "percentunit"
    for target in share["targets"]:
        flagged, _, total = target["expr"].partition(" / ")
        # Both counters count cached verdicts too, so the ratio stays within [0, 1].
        assert "rate(inference_out_of_domain_total{" in flagged, target["expr"]
        assert "rate(predictions_total{" in total, target["expr"]
    assert any("by (reason_kind)" in t["expr"] for t in share["targets"])


def test_the_drift_alert_fires_where_the_service_warns() -> None:
    """AIDetectorInputDrift's threshold is serve.drift_psi_alert, the level at which the
    service logs `input_drift`: one number, not two that drift apart."""
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    drift = next(rule for rule in rules if rule["alert"] == "AIDetectorInputDrift")
    serve = yaml.safe_load((REPO / "conf" / "serve" / "default.yaml").read_text())
    assert (
        drift["expr"].strip() == f"max by (feature) (input_drift_psi) > {serve['drift_psi_alert']}"
    )
    dashboard = json.loads(DASHBOARD.read_text())
    panel = next(p for p in panels(dashboard) if p["title"].startswith("Input drift"))
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1]["value"] == serve["drift_psi_alert"]
