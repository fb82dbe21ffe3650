"""The contract of serving/bentoml_internals.py, the one module that uses BentoML's private API.

On any BentoML but the supported one the first test fails with one line that says what to
re-check; the rest check that each internal it relies on still behaves as measured. The
live path (a real `bentoml serve` batching /predict) is covered by test_service.py.
"""

from __future__ import annotations

import pytest

from aidetector.serving.bentoml_internals import (
    SUPPORTED_BENTOML,
    bound_cork_wait,
    container_user_and_home,
    http_metrics_middleware,
    label_http_metrics_by_route,
    new_cork_optimizer,
    trace_requests_as_one_span,
    unsupported_reason,
)
from aidetector.serving.metrics import route_label


def test_the_installed_bentoml_is_the_supported_one() -> None:
    reason = unsupported_reason()
    if reason is not None:
        pytest.fail(reason, pytrace=False)


def test_the_supported_version_is_the_pinned_one() -> None:
    from .conftest import PROJECT_ROOT

    for name in ("requirements.txt", "requirements-serve.txt"):
        pins = (PROJECT_ROOT / name).read_text().split()
        assert f"bentoml=={SUPPORTED_BENTOML}" in pins, f"{name} pins another bentoml"


def test_a_burst_cannot_teach_the_batcher_to_wait_for_seconds() -> None:
    free, bounded = new_cork_optimizer(10.0), new_cork_optimizer(10.0)
    bound_cork_wait(bounded, 0.005)
    for optimizer in (free, bounded):
        for _ in range(20):  # batches that queued 2 s behind a running batch
            optimizer.log_outbound(n=32, wait=2.0, duration=0.03)
        optimizer.trigger_refresh()
    assert free.wait > 1.0  # BentoML alone: lone requests would be corked for seconds
    assert bounded.wait == 0.005
    assert bounded.o_a > 0  # the rest of the adaptive model is still learned


def test_the_container_user_is_bentomls_unprivileged_one() -> None:
    uid, home = container_user_and_home()
    assert uid > 0 and home.startswith("/")


def test_bentoml_builds_its_http_metrics_from_the_relabelled_class() -> None:
    import inspect

    from _bentoml_impl.server.app import ServiceAppFactory

    label_http_metrics_by_route(route_label)
    label_http_metrics_by_route(route_label)  # idempotent: one subclass, not a chain
    relabelled = http_metrics_middleware()
    assert getattr(relabelled, "labels_by_route", False)
    assert not getattr(relabelled.__mro__[1], "labels_by_route", False)
    # BentoML must still import the class by name when it builds the app, or the
    # replacement is never used (test_metrics.py checks the effect on a live server).
    source = inspect.getsource(ServiceAppFactory)
    assert "from bentoml._internal.server.http.instruments import (" in source
    assert "RunnerTrafficMetricsMiddleware," in source
    assert 'endpoint = scope["path"]' in inspect.getsource(relabelled.__mro__[1].__call__)


def test_bentoml_builds_its_tracing_middleware_without_per_message_spans() -> None:
    import inspect

    from _bentoml_impl.server.app import ServiceAppFactory
    from opentelemetry.instrumentation import asgi
    from starlette.applications import Starlette

    trace_requests_as_one_span()
    trace_requests_as_one_span()  # idempotent: one subclass, not a chain
    one_span = asgi.OpenTelemetryMiddleware
    assert getattr(one_span, "one_span_per_request", False)
    assert not getattr(one_span.__mro__[1], "one_span_per_request", False)
    # Built with the arguments BentoML passes: the server span stays, its children go.
    middleware = one_span(Starlette(), excluded_urls=None, default_span_details=None)
    assert middleware.exclude_receive_span and middleware.exclude_send_span
    # BentoML must still import the class by name when it builds the app, and pass no
    # exclude_spans of its own, or the default here is never used.
    source = inspect.getsource(ServiceAppFactory)
    assert "from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware" in source
    assert "exclude_spans" not in source
