"""Batch-1 latency is timed on one intra-op thread, as the service runs on the CPU."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from aidetector.evaluation.latency import LATENCY_CPU_THREADS, measure_batch1_latency
from aidetector.preprocessing import Preprocessing


class ThreadRecorder(nn.Module):
    """A two-class network that records torch's intra-op thread count on every call."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 2)
        self.threads: list[int] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.threads.append(torch.get_num_threads())
        return self.head(images.mean(dim=(2, 3)))


def test_latency_is_timed_on_one_thread_and_the_thread_count_is_restored() -> None:
    network = ThreadRecorder()
    images = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        figures = measure_batch1_latency(
            network, Preprocessing(image_size=8), images, samples=5, warmup=1, fake_index=1
        )
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    assert network.threads == [LATENCY_CPU_THREADS] * 6
    assert figures["latency_ms_mean"] > 0 and figures["latency_ms_p95"] > 0
