"""The bound on BentoML's learned cork wait (see serving/batching.py)."""

from __future__ import annotations

from bentoml._internal.marshal.dispatcher import Optimizer

from aidetector.serving.batching import bound_cork_wait


def test_a_burst_cannot_teach_the_batcher_to_wait_for_seconds() -> None:
    free, bounded = Optimizer(10.0), Optimizer(10.0)
    bound_cork_wait(bounded, 0.005)
    for optimizer in (free, bounded):
        for _ in range(20):  # batches that queued 2 s behind a running batch
            optimizer.log_outbound(n=32, wait=2.0, duration=0.03)
        optimizer.trigger_refresh()
    assert free.wait > 1.0  # BentoML alone: lone requests would be corked for seconds
    assert bounded.wait == 0.005
    assert bounded.o_a > 0  # the rest of the adaptive model is still learned
