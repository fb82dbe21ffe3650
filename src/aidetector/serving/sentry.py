"""Sentry error reporting: on only when SENTRY_DSN is set in the environment."""

from __future__ import annotations

import sentry_sdk

from aidetector import __version__


def init_sentry(dsn: str | None, model_version: str | None = None) -> bool:
    """Initialise sentry-sdk when dsn is given; return whether it is on.

    Only errors are sent (no tracing, no PII). Unexpected exceptions in the routes are
    captured explicitly with sentry_sdk.capture_exception, which is a no-op when off.
    """
    if not dsn:
        return False
    sentry_sdk.init(
        dsn=dsn,
        release=f"aidetector@{__version__}",
        traces_sample_rate=0.0,
        send_default_pii=False,
        # Framework auto-instrumentation would wrap BentoML's app; explicit capture suffices.
        auto_enabling_integrations=False,
    )
    if model_version:
        sentry_sdk.set_tag("model_version", model_version)
    return True
