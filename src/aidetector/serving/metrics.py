"""Prometheus metrics of the service, on BentoML's own /metrics.

They live in prometheus_client's default registry: BentoML runs workers with
PROMETHEUS_MULTIPROC_DIR set, so every process writes its samples to that directory and
/metrics aggregates them. Each process registers the metrics exactly once (service_metrics
is cached); a second registration would raise "Duplicated timeseries".
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class ServiceMetrics:
    """Every metric the service exports (names as in the serving README section)."""

    requests: Counter
    latency: Histogram
    predictions: Counter
    errors: Counter
    cache_hits: Counter
    cache_misses: Counter
    cache_errors: Counter
    model_accuracy: Gauge
    accuracy_samples: Gauge
    feedback: Counter


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
        predictions=Counter(
            "predictions_total", "Verdicts served, cached ones included", ["label"]
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
    )


@functools.cache
def gpu_gauge() -> Gauge:
    """The GPU utilisation gauge, registered only where a GPU is sampled."""
    return Gauge(
        "gpu_utilization_percent",
        "GPU utilisation from NVML",
        ["gpu"],
        multiprocess_mode="mostrecent",
    )


def start_gpu_sampler(interval_s: float = 5.0) -> threading.Thread | None:
    """Sample NVML utilisation into gpu_utilization_percent; None when NVML has no GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
    except Exception as error:  # no driver, no library, no GPU: nothing to sample
        log.info("GPU metrics off: NVML unavailable (%s)", error)
        return None
    if count == 0:
        return None
    handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    gauge = gpu_gauge()
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval_s):
            for index, handle in enumerate(handles):
                try:
                    rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
                except Exception:  # a transient NVML error must not kill the sampler
                    continue
                gauge.labels(gpu=str(index)).set(rates.gpu)

    thread = threading.Thread(target=sample, name="gpu-sampler", daemon=True)
    thread.start()
    return thread
