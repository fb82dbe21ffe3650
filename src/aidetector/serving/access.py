"""Access control in front of every route: API keys, feedback keys, and the internal tensor API.

Health, readiness, metrics and the web page itself stay open so that Kubernetes probes,
Prometheus and a browser work without a key; everything that runs the model needs one.

Two scopes. An API key (API_KEY) may predict. A feedback key (FEEDBACK_API_KEYS, each named
by its source, the labelling client) may predict and send /feedback, at most
serve.feedback_rate_limit per source. The service refuses to start without an API key unless
serve.allow_anonymous is true; then requests without a key may predict, and send feedback as
the one source `anonymous` unless feedback keys are set.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from aidetector.config.serve import Secrets, ServeSettings
from aidetector.errors import AidetectorError
from aidetector.serving.limits import drain_unread
from aidetector.serving.metrics import service_metrics

OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/", "/favicon.ico"})
# Reached only through BentoML's batching dispatcher inside the process: from outside, one
# malformed tensor would fail every request that shares its batch.
INTERNAL_PATHS = frozenset({"/infer_arrays"})
FEEDBACK_PATH = "/feedback"
API_KEY_HEADER = "x-api-key"
ANONYMOUS = "anonymous"
# Where the middleware leaves the caller for the routes (read with caller_of).
CALLER_SCOPE_KEY = "aidetector.caller"


class AccessRefusedError(AidetectorError):
    """The service must not start with this access configuration."""


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a feedback source name, `api` or `anonymous`, and its scope."""

    source: str
    may_send_feedback: bool


@dataclass(frozen=True)
class AccessPolicy:
    """Which keys may do what; built once at start-up from Secrets and serve settings."""

    api_keys: tuple[bytes, ...]
    feedback_keys: tuple[tuple[bytes, str], ...]  # (key, source)
    anonymous: bool

    @classmethod
    def from_secrets(cls, secrets: Secrets, allow_anonymous: bool) -> AccessPolicy:
        """The policy; AccessRefusedError without an API key unless anonymous access is allowed."""
        if not secrets.api_keys and not allow_anonymous:
            raise AccessRefusedError(
                "API_KEY is empty or unset: set it (a comma-separated list during rotation), "
                "or set serve.allow_anonymous: true to serve without a key"
            )
        return cls(
            api_keys=tuple(key.encode() for key in secrets.api_keys),
            feedback_keys=tuple((k.encode(), s) for k, s in secrets.feedback_keys.items()),
            anonymous=not secrets.api_keys,
        )

    @classmethod
    def closed(cls) -> AccessPolicy:
        """A policy that lets no one in (where the configuration was refused)."""
        return cls(api_keys=(), feedback_keys=(), anonymous=False)

    def identify(self, key: bytes | None) -> Caller | None:
        """Return the caller for a presented key (or none); None for a key that is not valid."""
        if key is None:
            if not self.anonymous:
                return None
            return Caller(ANONYMOUS, may_send_feedback=not self.feedback_keys)
        # Every comparison runs, so the time taken does not say which list a key is close to.
        source = None
        for candidate, name in self.feedback_keys:
            if hmac.compare_digest(key, candidate):
                source = name
        is_api_key = False
        for candidate in self.api_keys:
            is_api_key |= hmac.compare_digest(key, candidate)
        if source is not None:
            return Caller(source, may_send_feedback=True)
        return Caller("api", may_send_feedback=False) if is_api_key else None

    def summary(self) -> dict[str, Any]:
        """What the start-up log says about access (counts and names, never keys)."""
        return {
            "anonymous": self.anonymous,
            "api_keys": len(self.api_keys),
            "feedback_sources": sorted({source for _, source in self.feedback_keys}),
        }


def caller_of(scope: Scope) -> Caller:
    """Return the caller the middleware identified (anonymous if it never saw the request)."""
    caller = scope.get(CALLER_SCOPE_KEY)
    return caller if isinstance(caller, Caller) else Caller(ANONYMOUS, False)


async def _send_json(
    send: Send, status: int, payload: dict[str, object], extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *extra]})
    await send({"type": "http.response.body", "body": body})


def presented_key(scope: Scope) -> bytes | None:
    """Return the key from X-API-Key or an `Authorization: Bearer` header, if any."""
    headers: Iterable[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"x-api-key":
            return value
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].strip()
    return None


class AccessMiddleware:
    """ASGI middleware: 401 without a valid key, 403 for feedback without a feedback key,
    429 above the feedback rate of a source, 404 for internal routes.

    The rate limit is `limits`' moving window in this worker's memory: each pod (one worker
    per pod) keeps its own model_accuracy gauge, so a per-pod limit bounds what one source
    can do to the gauge that pod exports.
    """

    def __init__(
        self,
        app: ASGIApp,
        policy: AccessPolicy,
        feedback_rates: list[RateLimitItem],
        settings: ServeSettings,
    ):
        self.app = app
        self.policy = policy
        self.settings = settings
        self.feedback_rates = feedback_rates
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then pass it on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in INTERNAL_PATHS:
            await self._refuse(scope, receive, send, 404, f"{path} is internal to the service")
            return
        if path in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        key = presented_key(scope)
        caller = self.policy.identify(key)
        if caller is None:
            service_metrics().errors.labels(type="unauthorized").inc()
            reason = "missing" if key is None else "invalid"
            await self._refuse(
                scope,
                receive,
                send,
                401,
                f"{reason} API key: send it in the X-API-Key header",
                extra=[(b"www-authenticate", b'ApiKey header="X-API-Key"')],
            )
            return
        if path == FEEDBACK_PATH and not await self._feedback_allowed(caller, scope, receive, send):
            return
        scope[CALLER_SCOPE_KEY] = caller
        await self.app(scope, receive, send)

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        message: str,
        extra: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        # Drained first: a client that sends its whole body before reading gets the answer.
        await drain_unread(scope, receive, self.settings)
        await _send_json(send, status, {"error": message, "status": status}, extra)

    async def _feedback_allowed(
        self, caller: Caller, scope: Scope, receive: Receive, send: Send
    ) -> bool:
        if not caller.may_send_feedback:
            service_metrics().errors.labels(type="forbidden").inc()
            message = "this key may not send feedback: /feedback takes a feedback key"
            await self._refuse(scope, receive, send, 403, message)
            return False
        for rate in self.feedback_rates:
            if await self.limiter.hit(rate, "feedback", caller.source):
                continue
            stats = await self.limiter.get_window_stats(rate, "feedback", caller.source)
            retry_after = max(1, int(stats.reset_time - time.time()) + 1)
            service_metrics().errors.labels(type="rate_limited").inc()
            message = f"feedback from {caller.source} is limited to {rate}; retry later"
            extra = [(b"retry-after", str(retry_after).encode())]
            await self._refuse(scope, receive, send, 429, message, extra)
            return False
        return True
