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

It also labels BentoML's HTTP metrics by route rather than by raw path (see
label_http_metrics_by_route): BentoML has no setting for that, and the raw path lets anyone
add series to /metrics with random URLs (300 of them grew it from 26 KB to 1.4 MB).

It also makes BentoML's OpenTelemetry middleware trace a request as its server span alone
(see trace_requests_as_one_span): BentoML records every span whether or not an exporter is
configured (its request ids are span ids), and by default the middleware adds a child span
for every ASGI message received and sent, three more per /predict; that was a sixth of the
event loop's CPU under load.

Nothing else in the project may touch `bentoml._internal` or `_bentoml_impl`.
tests/serving/test_bentoml_internals.py is the contract: on any BentoML other than
SUPPORTED_BENTOML it fails with one line saying what to re-check.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import bentoml
import numpy as np
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

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
            f"found {bentoml.__version__}: re-check ServiceAppFactory.batch_infer, "
            f"CorkDispatcher.optimizer and RunnerTrafficMetricsMiddleware, re-measure "
            f"(benchmarks/serve_load.py), then bump it"
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


# Where the labelled copy of a request's scope keeps the real one for the app behind.
_REAL_SCOPE = "aidetector.real_scope"


class _RealScope:
    """The app behind BentoML's metrics middleware, handed back the request's real scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope.get(_REAL_SCOPE, scope), receive, send)


def label_http_metrics_by_route(label: Callable[[Scope], str]) -> None:
    """Make BentoML's HTTP metrics label each request `endpoint=label(scope)`, not its path.

    BentoML 1.4 builds its app with RunnerTrafficMetricsMiddleware as the outermost layer,
    importing the class by name from its module when the app is built; a subclass put there
    first sees the request before anything else does. It hands BentoML a copy of the scope
    whose path is the label (all BentoML reads the path for) and hands the app behind the
    real scope, so routing and every other middleware see the request unchanged. Call it
    before BentoML builds the app: at import of the service module. Idempotent.
    """
    from bentoml._internal.server.http import instruments

    base: Any = instruments.RunnerTrafficMetricsMiddleware
    if getattr(base, "labels_by_route", False):
        return

    class RouteLabelledTrafficMetrics(base):
        labels_by_route = True

        def __init__(self, app: ASGIApp, **options: Any) -> None:
            super().__init__(_RealScope(app), **options)

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"] != "/metrics":
                scope = {**scope, "path": label(scope), _REAL_SCOPE: scope}
            await super().__call__(scope, receive, send)

    setattr(instruments, "RunnerTrafficMetricsMiddleware", RouteLabelledTrafficMetrics)  # noqa: B010


def http_metrics_middleware() -> type:
    """Return the class BentoML will build its HTTP metrics middleware from."""
    from bentoml._internal.server.http import instruments

    cls: type = instruments.RunnerTrafficMetricsMiddleware
    return cls


def trace_requests_as_one_span() -> None:
    """Make BentoML's OpenTelemetry middleware skip its per-message receive and send spans.

    BentoML 1.4 imports OpenTelemetryMiddleware by name from its module when it builds the
    app, and passes it no `exclude_spans`; a subclass put there first that defaults it to
    both keeps the server span (its attributes, status and BentoML's request id) and drops
    only the children. Call it before BentoML builds the app. Idempotent.
    """
    from opentelemetry.instrumentation import asgi

    base: Any = asgi.OpenTelemetryMiddleware
    if getattr(base, "one_span_per_request", False):
        return

    class OneSpanPerRequest(base):
        one_span_per_request = True

        def __init__(self, app: ASGIApp, *args: Any, **options: Any) -> None:
            options.setdefault("exclude_spans", ["receive", "send"])
            super().__init__(app, *args, **options)

    setattr(asgi, "OpenTelemetryMiddleware", OneSpanPerRequest)  # noqa: B010
