"""Prometheus metrics of the service, on BentoML's own /metrics.

They live in prometheus_client's default registry: BentoML runs workers with
PROMETHEUS_MULTIPROC_DIR set, so every process writes its samples to that directory and
/metrics aggregates them. Each process registers the metrics exactly once (service_metrics
is cached); a second registration would raise "Duplicated timeseries".

In that mode prometheus_client's own process_* metrics are not exported, so a sampler
thread publishes the worker's CPU time and memory (and GPU use through NVML) itself.
The dashboards and alerts in deploy/monitoring query only these names.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from dataclasses import dataclass

import psutil
from prometheus_client import Counter, Gauge, Histogram
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Scope

from aidetector.labels import FAKE, REAL

log = logging.getLogger(__name__)

# The one `endpoint` label of BentoML's HTTP metrics for every path that no route serves.
UNMATCHED_PATH = "<unmatched>"
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class ServiceMetrics:
    """Every metric the service exports (names as in docs/serving.md, "Observability")."""

    requests: Counter
    latency: Histogram
    explain_latency: Histogram
    predictions: Counter
    out_of_domain: Counter
    errors: Counter
    cache_hits: Counter
    cache_misses: Counter
    cache_errors: Counter
    model_accuracy: Gauge
    registered_accuracy: Gauge
    accuracy_samples: Gauge
    feedback: Counter
    ready: Gauge
    cpu_seconds: Counter
    memory_bytes: Gauge
    drift_psi: Gauge
    drift_samples: Gauge


# Label values known up front get a zero sample at start: a series that appears only on its
# first increment hides that increment from rate() and leaves dashboards blank.
PREDICTION_LABELS = (REAL, FAKE)
# Why a verdict was UNCERTAIN: the native size, or the domain score (models/domain.py).
OUT_OF_DOMAIN_KINDS = ("size", "features")
CACHE_OPERATIONS = ("get", "set", "get_skipped", "set_skipped")
FEEDBACK_OUTCOMES = ("correct", "incorrect")


@functools.cache
def service_metrics() -> ServiceMetrics:
    """Create the metrics once per process and return them."""
    return ServiceMetrics(
        requests=Counter(
            "inference_requests_total",
            "Inference requests by endpoint and HTTP status",
            ["endpoint", "status"],
        ),
        latency=Histogram(
            "inference_latency_seconds",
            "Time to answer an inference request, validation to response",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
        ),
        # Its own histogram: an explanation costs a backward pass, and mixed into
        # inference_latency_seconds it would move the prediction latency alerts.
        explain_latency=Histogram(
            "explain_latency_seconds",
            "Time to answer an /explain request, validation to response",
            buckets=LATENCY_BUCKETS,
        ),
        predictions=Counter(
            "predictions_total", "Verdicts served, cached ones included", ["label"]
        ),
        out_of_domain=Counter(
            "inference_out_of_domain_total",
            "Verdicts answered UNCERTAIN because the image lies outside the training domain, "
            "cached ones included, by what was out of range",
            ["reason_kind"],
        ),
        errors=Counter("inference_errors_total", "Failed inference requests by type", ["type"]),
        cache_hits=Counter("cache_hits_total", "Prediction cache hits"),
        cache_misses=Counter("cache_misses_total", "Prediction cache misses"),
        cache_errors=Counter(
            "cache_errors_total",
            "Prediction cache operations that failed or were skipped while Redis was failing",
            ["operation"],
        ),
        model_accuracy=Gauge(
            "model_accuracy",
            "Registered test accuracy at start, then rolling accuracy over labelled feedback",
            ["model_version"],
            multiprocess_mode="mostrecent",
        ),
        registered_accuracy=Gauge(
            "model_registered_accuracy",
            "Test accuracy recorded in the MLflow registry for the served version",
            ["model_version"],
            multiprocess_mode="mostrecent",
        ),
        accuracy_samples=Gauge(
            "model_accuracy_samples",
            "Labelled feedback behind model_accuracy (0: the registered test accuracy)",
            ["model_version"],
            multiprocess_mode="mostrecent",
        ),
        feedback=Counter(
            "feedback_total",
            "Labelled feedback received, by whether the verdict was right",
            ["outcome"],
        ),
        ready=Gauge(
            "service_ready",
            "1 once the model is loaded and warmed up (what /readyz reports), else 0",
            multiprocess_mode="livemin",
        ),
        cpu_seconds=Counter(
            "service_cpu_seconds_total", "CPU time used by the service's worker processes"
        ),
        memory_bytes=Gauge(
            "service_memory_bytes",
            "Resident memory of the service's worker processes",
            multiprocess_mode="livesum",
        ),
        # Per worker window; the largest over live workers, so one drifting worker shows.
        # Only for a model that carries a drift reference (serving/drift.py).
        drift_psi=Gauge(
            "input_drift_psi",
            "Population stability index of recent inputs against the evaluation data, by "
            "feature (0 until the window holds drift_min_samples images)",
            ["feature"],
            multiprocess_mode="livemax",
        ),
        drift_samples=Gauge(
            "input_drift_window_images",
            "Images in the drift windows of the live workers",
            multiprocess_mode="livesum",
        ),
    )


def initialise_label_values(metrics: ServiceMetrics) -> None:
    """Give every known label value its zero sample."""
    for label in PREDICTION_LABELS:
        metrics.predictions.labels(label=label)
    for kind in OUT_OF_DOMAIN_KINDS:
        metrics.out_of_domain.labels(reason_kind=kind)
    for operation in CACHE_OPERATIONS:
        metrics.cache_errors.labels(operation=operation)
    for outcome in FEEDBACK_OUTCOMES:
        metrics.feedback.labels(outcome=outcome)


@functools.cache
def gpu_gauge() -> Gauge:
    """The GPU utilisation gauge, registered only where a GPU is sampled."""
    return Gauge(
        "gpu_utilization_percent",
        "GPU utilisation from NVML",
        ["gpu"],
        multiprocess_mode="mostrecent",
    )


def _nvml_handles() -> list[object]:
    """NVML device handles, or [] where there is no driver, library or GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception as error:  # no driver, no library, no GPU: nothing to sample
        log.info("GPU metrics off: NVML unavailable (%s)", error)
        return []


def start_resource_sampler(
    metrics: ServiceMetrics, *, gpu: bool, interval_s: float = 5.0
) -> threading.Thread:
    """Publish this worker's CPU time and memory, and GPU use when gpu and NVML allow."""
    process = psutil.Process(os.getpid())
    handles = _nvml_handles() if gpu else []
    gauge = gpu_gauge() if handles else None
    last_cpu = 0.0

    def sample() -> None:
        nonlocal last_cpu
        times = process.cpu_times()
        cpu = times.user + times.system
        metrics.cpu_seconds.inc(max(cpu - last_cpu, 0.0))
        last_cpu = cpu
        metrics.memory_bytes.set(process.memory_info().rss)
        if gauge is None:
            return
        import pynvml

        for index, handle in enumerate(handles):
            try:
                rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
            except Exception:  # a transient NVML error must not kill the sampler
                continue
            gauge.labels(gpu=str(index)).set(rates.gpu)

    def loop() -> None:
        while True:
            sample()
            time.sleep(interval_s)

    thread = threading.Thread(target=loop, name="resource-sampler", daemon=True)
    thread.start()
    return thread


def route_label(scope: Scope) -> str:
    """Return the path template of the route that serves this request, or UNMATCHED_PATH.

    BentoML labels its HTTP metrics with the raw path, so every random URL a scanner tries
    would add series (and bytes to every scrape) for good. Labelling by route keeps the
    label set as small as the app's route table. A wrong method on a known path (405)
    keeps the route's label.
    """
    app = scope.get("app")  # Starlette puts itself here before its middleware runs
    routes = getattr(app, "routes", None)
    if not routes:
        return UNMATCHED_PATH
    return _matching_template(routes, scope, "") or UNMATCHED_PATH


def _matching_template(routes: list[BaseRoute], scope: Scope, prefix: str) -> str | None:
    for route in routes:
        match, child_scope = route.matches(scope)
        if match == Match.NONE:
            continue
        if not isinstance(route, Mount):
            return prefix + str(getattr(route, "path", ""))
        inner = getattr(route.app, "routes", None)  # a Router or an app; StaticFiles has none
        if inner is None:
            return f"{prefix}{route.path}/{{path}}"
        found = _matching_template(inner, {**scope, **child_scope}, prefix + route.path)
        if found is not None:
            return found
    return None
