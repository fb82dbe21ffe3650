"""The issue's serving targets, checked against a serve_load.py report (at concurrency 32)."""

from __future__ import annotations

from typing import Any

AT = 32


def _at(points: list[dict[str, Any]], key: str, concurrency: int = AT) -> float:
    """The value of key at the given concurrency (or the highest measured below it)."""
    eligible = [p for p in points if p["concurrency"] <= concurrency] or points
    return float(max(eligible, key=lambda p: p["concurrency"])[key])


def _check(value: float, threshold: float, at_least: bool, what: str) -> dict[str, Any]:
    met = value >= threshold if at_least else value <= threshold
    return {
        "value": round(value, 3),
        "target": f"{'>=' if at_least else '<='} {threshold}",
        "met": met,
        "what": what,
    }


def evaluate_targets(report: dict[str, Any]) -> dict[str, Any]:
    """Return every target with its measured value and whether it is met."""
    s, ref = report["settings"], report["reference"]
    served = _at(s["demo_predict"], "throughput_rps")
    hit = _at(s["demo_cache_hit"], "throughput_rps")
    floor_api = _at(s["floor_api"], "throughput_rps")
    floor_route = _at(s["floor_route"], "throughput_rps")
    big = _at(s["r224_predict"], "images_per_s")
    naive = _at(s["r224_naive"], "images_per_s")
    batch = _at(s["demo_predict_batch32"], "images_per_s")
    served_points = [p for k, v in s.items() if not k.startswith("floor") for p in v]
    requests = sum(p["requests"] for p in served_points)
    errors = sum(p["errors"] for p in served_points)
    return {
        "demo_served_vs_floor_api": _check(
            served / floor_api, 0.7, True,
            "demo /predict (cache misses) req/s over the empty @bentoml.api upload endpoint",
        ),
        "demo_served_vs_floor_route": _check(
            served / floor_route, 0.7, True,
            "the same, over an empty endpoint with /predict's own transport (mounted route)",
        ),
        "per_request_overhead": _check(
            1 - hit / floor_route, 0.30, False,
            "1 - cache-hit req/s / floor_route req/s: validation, hashing, cache, logging and "
            "metrics without decoding or the model",
        ),
        "r224_served_vs_reference": _check(
            big / ref["224"]["images_per_s"], 0.8, True,
            "resnet18 224 px /predict img/s over the in-process batched forward (same threads)",
        ),
        "r224_served_vs_naive": _check(
            big / naive, 2.0, True, "resnet18 224 px /predict img/s over the naive server"
        ),
        "demo_batch32_vs_reference": _check(
            batch / ref["demo"]["images_per_s"], 0.6, True,
            "/predict_batch (32 images per request) img/s over the in-process batched forward",
        ),
        "errors": {
            "value": errors,
            "requests": requests,
            "target": "0 errors over >= 5000 requests",
            "met": errors == 0 and requests >= 5000,
            "what": "non-200 answers or failed connections over every served request",
        },
    }  # fmt: skip
