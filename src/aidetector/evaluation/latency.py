"""Batch-1 latency of the full inference path (preprocessing included)."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from aidetector.inference import run_batch
from aidetector.models.domain import DomainProfile
from aidetector.preprocessing import Preprocessing, arrays_to_batch


def measure_batch1_latency(
    network: nn.Module,
    preprocessing: Preprocessing,
    images: np.ndarray,
    samples: int = 100,
    warmup: int = 10,
    temperature: float = 1.0,
    domain: DomainProfile | None = None,
    *,
    fake_index: int,
) -> dict[str, float]:
    """Return mean and p95 milliseconds of single-image predictions over `samples` runs.

    One image is one forward pass of its network inputs: all its crops in crop mode.
    """
    network.eval()
    batches = [
        arrays_to_batch(preprocessing.inference_inputs(images[i % len(images)][None]))
        for i in range(samples + warmup)
    ]
    timings = []
    for index, batch in enumerate(batches):
        start = time.perf_counter()
        run_batch(network, preprocessing, batch, temperature, domain, fake_index=fake_index)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        if index >= warmup:
            timings.append((time.perf_counter() - start) * 1000.0)
    return {
        "latency_ms_mean": float(np.mean(timings)),
        "latency_ms_p95": float(np.percentile(timings, 95)),
    }
