"""The dashboard, the alert rules and the HPA adapter rule query only metrics the service
really exports: every metric name in their PromQL is looked up in a live /metrics scrape."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from aidetector.serving.metrics import gpu_gauge

from .conftest import BentoServer
from .images import RAW, unique_jpeg

REPO = Path(__file__).parents[2]
DASHBOARD = REPO / "deploy/monitoring/grafana/ai-image-detector.json"
RULES = REPO / "deploy/monitoring/prometheus/alerts.yml"
ADAPTER = REPO / "deploy/k8s/components/hpa-inflight/prometheus-adapter-values.yaml"
# Grafana's range variables, replaced by a concrete range so that the query parses.
GRAFANA_RANGES = re.compile(r"\$__(rate_interval|interval|range)")


def metric_names(expression: str) -> set[str]:
    """Names of every series selector in a PromQL expression."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)
            return
        for attribute in ("lhs", "rhs", "expr", "param", "vector_selector"):
            child = getattr(node, attribute, None)
            if child is not None:
                walk(child)
        for argument in getattr(node, "args", None) or []:
            walk(argument)

    walk(promql_parser.parse(GRAFANA_RANGES.sub("5m", expression)))
    return names


def queried_expressions() -> dict[str, str]:
    """Every PromQL expression the deployment runs, keyed by where it lives."""
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = {
        f"dashboard:{panel['title']}:{target['refId']}": target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    }
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            expressions[f"variable:{variable['name']}"] = re.sub(
                r"label_values\((\w+),.*\)", r"\1", query
            )
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            expressions[f"alert:{rule['alert']}"] = rule["expr"]
    for rule in yaml.safe_load(ADAPTER.read_text())["rules"]["custom"]:
        expressions["adapter:" + rule["name"]["as"]] = rule["seriesQuery"]
    return expressions


def scraped_names(text: str) -> set[str]:
    return {
        re.split(r"[{ ]", line, maxsplit=1)[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_metric_names_are_extracted_from_promql() -> None:
    assert metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="1"}[$__rate_interval])))'
        " / on() group_left b or absent(c) and -d"
    ) == {"a_bucket", "b", "c", "d"}


def test_monitoring_queries_only_exported_metrics(server: BentoServer) -> None:
    # Traffic that makes every labelled family appear: a verdict, a rejection, a label.
    verdict = server.post("/predict", data=unique_jpeg(700), headers=RAW).json()
    server.post("/predict", data=b"not an image", headers=RAW)
    server.post("/feedback", json={"image_id": verdict["image_id"], "label": verdict["label"]})
    exported = scraped_names(server.get("/metrics").text)

    expressions = queried_expressions()
    assert len(expressions) > 20
    queried: dict[str, set[str]] = {}
    for where, expression in expressions.items():
        for name in metric_names(expression):
            queried.setdefault(name, set()).add(where)
    # NVML only where the model runs on a GPU (test_cuda.py checks it there); the shared
    # server runs on the CPU, so the name is checked against the one the sampler registers.
    gpu_only = {family.name for family in gpu_gauge().describe()}
    missing = {
        name: sorted(places)
        for name, places in queried.items()
        if name not in exported and name not in gpu_only
    }
    assert missing == {}, f"queried but not exported: {missing}"
    assert "gpu_utilization_percent" in queried


@pytest.mark.parametrize(
    "name",
    [
        "inference_requests_total",
        "model_accuracy",
        "service_ready",
        "inference_out_of_domain_total",
    ],
)
def test_the_core_metrics_are_queried(name: str) -> None:
    queried = set().union(*(metric_names(e) for e in queried_expressions().values()))
    assert name in queried
