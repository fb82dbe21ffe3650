"""Calls a batchable BentoML API from inside its own service, through its adaptive batcher.

BentoML's documented in-process route to a method is the service's self-proxy, which
serialises every array to JSON and back through a loopback HTTP call: for a 224 px image
that costs more than the forward pass. Instead this finds the dispatcher that serves the
API's own HTTP route and hands it the array directly, so requests from /predict and
/predict_batch share one adaptive batching queue (max_batch_size, max_latency_ms) with no
serialisation.

It also bounds how long that batcher corks a request while waiting for company. BentoML
learns the cork time from the average queue wait of recent batches, which includes time
spent behind a running batch; after a burst it learns seconds, and that decays only 5 % per
refresh, so lone requests then wait seconds (measured: 2.2 s at concurrency 1 after a burst
at 64). serve.max_batch_wait_ms caps the learned wait; under load batches still fill while
the previous one runs. Both rely on BentoML 1.4 internals (pinned in requirements.txt); the
serving tests fail loudly if an upgrade moves them.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from starlette.applications import Starlette

from aidetector.serving.verdicts import RunBatch


async def _run(batch_infer: Any, api_name: str, array: np.ndarray) -> np.ndarray:
    result: np.ndarray = await batch_infer(api_name, (array,), {})
    return result


class BatchingUnavailableError(RuntimeError):
    """The BentoML app does not expose the batching entry point this module expects."""


def bound_cork_wait(optimizer: Any, max_wait_s: float) -> None:
    """Make a CorkDispatcher's optimizer never learn a cork wait above max_wait_s."""
    refresh = optimizer.trigger_refresh

    def bounded_refresh() -> None:
        refresh()
        optimizer.wait = min(optimizer.wait, max_wait_s)

    optimizer.trigger_refresh = bounded_refresh
    optimizer.wait = min(optimizer.wait, max_wait_s)


def find_batch_runner(app: Starlette, api_name: str, max_wait_s: float) -> RunBatch:
    """Return `await run(array)` that sends one array through the API's adaptive batching."""
    for route in app.routes:
        endpoint = getattr(route, "endpoint", None)
        if getattr(route, "name", None) != api_name or not isinstance(endpoint, functools.partial):
            continue
        factory: Any = getattr(endpoint.func, "__self__", None)
        batch_infer = getattr(factory, "batch_infer", None)
        dispatcher = getattr(factory, "dispatchers", {}).get(api_name)
        if batch_infer is None or dispatcher is None or not hasattr(dispatcher, "optimizer"):
            break
        bound_cork_wait(dispatcher.optimizer, max_wait_s)

        return functools.partial(_run, batch_infer, api_name)
    raise BatchingUnavailableError(
        f"no adaptive-batching route for the batchable API {api_name!r}; "
        f"this module supports bentoml==1.4.x (see requirements.txt)"
    )
