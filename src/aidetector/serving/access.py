"""Access control in front of every route: the API key, and the internal tensor API.

Health, readiness, metrics and the web page itself stay open so that Kubernetes probes,
Prometheus and a browser work without the key; everything that runs the model needs it.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from aidetector.serving.metrics import service_metrics

OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/", "/favicon.ico"})
# Reached only through BentoML's batching dispatcher inside the process: from outside, one
# malformed tensor would fail every request that shares its batch.
INTERNAL_PATHS = frozenset({"/infer_arrays"})
API_KEY_HEADER = "x-api-key"


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
    """ASGI middleware: 401 without the API key (when one is set), 404 for internal routes."""

    def __init__(self, app: ASGIApp, api_key: str | None = None) -> None:
        self.app = app
        self.api_key = api_key.encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then pass it on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in INTERNAL_PATHS:
            await _send_json(send, 404, {"error": f"{path} is internal to the service"})
            return
        if self.api_key is not None and path not in OPEN_PATHS:
            key = presented_key(scope)
            if key is None or not hmac.compare_digest(key, self.api_key):
                service_metrics().errors.labels(type="unauthorized").inc()
                reason = "missing" if key is None else "invalid"
                await _send_json(
                    send,
                    401,
                    {"error": f"{reason} API key: send it in the X-API-Key header", "status": 401},
                    extra=[(b"www-authenticate", b'ApiKey header="X-API-Key"')],
                )
                return
        await self.app(scope, receive, send)
