"""Batch-1 latency of the full inference path (preprocessing included).

On the CPU it is measured on one intra-op thread, as the service runs (serve.cpu_threads):
with two threads on two shared cores, a neighbouring job made OpenMP's threads wait for each
other and a 32 px resnet18 read 487 ms at p95 instead of about 12, failing the latency gate.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from aidetector.inference import run_batch
from aidetector.models.domain import DomainProfile
from aidetector.preprocessing import Preprocessing, arrays_to_batch

# Intra-op threads while timing on the CPU (the service's default serve.cpu_threads).
LATENCY_CPU_THREADS = 1


@contextmanager
def intra_op_threads(threads: int) -> Iterator[None]:
    """Run the block with torch using this many intra-op threads, then restore the count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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
    with intra_op_threads(LATENCY_CPU_THREADS):
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
