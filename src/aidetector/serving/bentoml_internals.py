"""Every use of BentoML's private API, in one place: in-process adaptive batching.

BentoML's documented in-process route to a batchable method is the service's self-proxy,
which serialises every array to JSON and back through a loopback HTTP call: for a 224 px
image that costs more than the forward pass. Instead this finds the dispatcher that serves
the API's own HTTP route and hands it the array directly, so requests from /predict and
/predict_batch share one adaptive batching queue (max_batch_size, max_latency_ms) with no
serialisation; that was measured at 2.5x the throughput of the self-proxy.

The documented alternative, a second service behind `bentoml.depends`, was measured back to
back with this design (`python benchmarks/serve_load.py --public-batching`, 2 shared cores,
3 interleaved rounds, medians): at concurrency 32 the demo model served 314 req/s here and
154 req/s there, 225 of whose 780 requests failed with "Server disconnected" on the hop
between the two services (a long-open BentoML issue, bentoml/BentoML#3669 and #4238); the
224 px model served 26.1 img/s here and 26.5 there with 34 of 169 requests failed. Far
outside the 10 % it would have to stay within, so this module stays.

It also bounds how long that batcher corks a request while waiting for company. BentoML
learns the cork time from the average queue wait of recent batches, which includes time
spent behind a running batch; after a burst it learns seconds, and that decays only 5 % per
refresh, so lone requests then wait seconds (measured: 2.2 s at concurrency 1 after a burst
at 64). serve.max_batch_wait_ms caps the learned wait; under load batches still fill while
the previous one runs.

Nothing else in the project may touch `bentoml._internal` or `_bentoml_impl`.
tests/serving/test_bentoml_internals.py is the contract: on any BentoML other than
SUPPORTED_BENTOML it fails with one line saying what to re-check.
"""

from __future__ import annotations

import functools
from typing import Any

import bentoml
import numpy as np
from starlette.applications import Starlette

from aidetector.serving.verdicts import RunBatch

# The one release these internals were read from and measured with (requirements.txt pins it).
SUPPORTED_BENTOML = "1.4.40"


class BatchingUnavailableError(RuntimeError):
    """The BentoML app does not expose the batching entry point this module expects."""


def unsupported_reason() -> str | None:
    """Return one line saying why this BentoML is not the supported one, or None if it is."""
    if bentoml.__version__ != SUPPORTED_BENTOML:
        return (
            f"aidetector.serving.bentoml_internals supports bentoml=={SUPPORTED_BENTOML}, "
            f"found {bentoml.__version__}: re-check ServiceAppFactory.batch_infer and "
            f"CorkDispatcher.optimizer, re-measure (benchmarks/serve_load.py), then bump it"
        )
    return None


def new_cork_optimizer(max_latency_s: float) -> Any:
    """Return a fresh BentoML cork optimizer (what a dispatcher learns its waits with)."""
    from bentoml._internal.marshal.dispatcher import Optimizer

    return Optimizer(max_latency_s)


def bound_cork_wait(optimizer: Any, max_wait_s: float) -> None:
    """Make a CorkDispatcher's optimizer never learn a cork wait above max_wait_s."""
    refresh = optimizer.trigger_refresh

    def bounded_refresh() -> None:
        refresh()
        optimizer.wait = min(optimizer.wait, max_wait_s)

    optimizer.trigger_refresh = bounded_refresh
    optimizer.wait = min(optimizer.wait, max_wait_s)


async def _run(batch_infer: Any, api_name: str, array: np.ndarray) -> np.ndarray:
    result: np.ndarray = await batch_infer(api_name, (array,), {})
    return result


def find_batch_runner(app: Starlette, api_name: str, max_wait_s: float) -> RunBatch:
    """Return `await run(array)` that sends one array through the API's adaptive batching."""
    from bentoml._internal.marshal.dispatcher import CorkDispatcher

    for route in app.routes:
        endpoint = getattr(route, "endpoint", None)
        if getattr(route, "name", None) != api_name or not isinstance(endpoint, functools.partial):
            continue
        factory: Any = getattr(endpoint.func, "__self__", None)
        batch_infer = getattr(factory, "batch_infer", None)
        dispatcher = getattr(factory, "dispatchers", {}).get(api_name)
        if batch_infer is None or not isinstance(dispatcher, CorkDispatcher):
            break
        bound_cork_wait(dispatcher.optimizer, max_wait_s)
        return functools.partial(_run, batch_infer, api_name)
    raise BatchingUnavailableError(
        f"no adaptive-batching route for the batchable API {api_name!r}; "
        + (unsupported_reason() or f"bentoml=={SUPPORTED_BENTOML} changed shape")
    )


def container_user_and_home() -> tuple[int, str]:
    """Return the uid/gid and home that `bentoml containerize` images run with.

    The Kubernetes manifests hard-code both; tests/deploy checks them against these.
    """
    from bentoml._internal.container.generate import BENTO_HOME, BENTO_UID_GID

    return int(BENTO_UID_GID), str(BENTO_HOME)
