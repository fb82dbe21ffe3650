"""The webhook receiver: MLflow alias moves become releases, Alertmanager alerts retrains.

Routes:
  POST /mlflow        MLflow's signed webhook; 202 released, 200 ignored, 401 unsigned, bad
                      or stale signature, 409 replayed, 400 not an event, 502 GitHub failed
                      (MLflow retries 5xx with the same delivery id, which then counts again)
  POST /alertmanager  Alertmanager's webhook with `Authorization: Bearer ALERTMANAGER_TOKEN`;
                      404 while no token is set
  GET  /livez         liveness and readiness

Every request gets exactly one JSON log line, `webhook_decision`, saying what was decided and
why (serving/logging_json.py). Secrets, signatures and tokens are never logged.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from aidetector.config.release import ALERTMANAGER_TOKEN_ENV, ReleaseSecrets, ReleaseSettings
from aidetector.release.decisions import Decision, PayloadError, decide_alertmanager, decide_mlflow
from aidetector.release.github import DispatchError, GitHubDispatcher
from aidetector.release.signature import ReplayGuard, SignatureError, verify
from aidetector.serving.logging_json import log_event

DECISION_EVENT = "webhook_decision"


@dataclass
class RetrainState:
    """When this process last sent a retrain event (the cooldown's memory)."""

    last_sent: float | None = None


def respond(source: str, status: int, decision: str, reason: str, **fields: Any) -> JSONResponse:
    """Log the decision as one JSON line and answer with it."""
    level = logging.INFO if status < 400 else logging.WARNING
    log_event(
        DECISION_EVENT,
        level,
        source=source,
        decision=decision,
        reason=reason,
        status=status,
        **fields,
    )
    return JSONResponse({"decision": decision, "reason": reason}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes | None:
    """Return the request body, or None as soon as it exceeds limit bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    settings: ReleaseSettings,
    secrets: ReleaseSecrets,
    dispatcher: GitHubDispatcher,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """Return the receiver's ASGI app."""
    replays = ReplayGuard(settings.max_age_s, settings.replay_memory)
    retrain = RetrainState()
    retrain_lock = asyncio.Lock()
    too_large = f"the body exceeds {settings.max_body_bytes} bytes"

    async def mlflow_webhook(request: Request) -> JSONResponse:
        body = await read_body(request, settings.max_body_bytes)
        if body is None:
            return respond("mlflow", 413, "refused", too_large)
        try:
            delivery = verify(
                body, request.headers, secrets.webhook_secrets, clock(), settings.max_age_s
            )
        except SignatureError as error:
            return respond("mlflow", 401, "refused", str(error), check=error.reason)
        ids = {"delivery_id": delivery.delivery_id}
        if not replays.claim(delivery.delivery_id):
            return respond(
                "mlflow", 409, "refused", "delivery already received", check="replayed", **ids
            )
        try:
            decision = decide_mlflow(body, settings, delivery.delivery_id)
        except PayloadError as error:
            return respond("mlflow", 400, "refused", str(error), check="payload", **ids)
        return await act("mlflow", decision, settings.github.release_event, delivery.delivery_id)

    async def act(
        source: str, decision: Decision, event_type: str, claim: str | None
    ) -> JSONResponse:
        fields = {k: v for k, v in decision.payload.items() if k != "source"}
        if decision.action == "ignore":
            return respond(source, 200, "ignored", decision.reason, **fields)
        try:
            await dispatcher.dispatch(event_type, decision.payload)
        except DispatchError as error:
            if claim is not None:
                replays.release(claim)
            return respond(source, 502, "failed", str(error), event_type=event_type, **fields)
        verb = "released" if decision.action == "release" else "retrain"
        return respond(source, 202, verb, decision.reason, event_type=event_type, **fields)

    async def alertmanager_webhook(request: Request) -> JSONResponse:
        if not secrets.alertmanager_tokens:
            return respond(
                "alertmanager", 404, "refused", f"route off: {ALERTMANAGER_TOKEN_ENV} is not set"
            )
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        known = any(
            hmac.compare_digest(token.strip().encode(), expected.encode())
            for expected in secrets.alertmanager_tokens
        )
        if scheme.lower() != "bearer" or not known:
            return respond("alertmanager", 401, "refused", "missing or wrong bearer token")
        body = await read_body(request, settings.max_body_bytes)
        if body is None:
            return respond("alertmanager", 413, "refused", too_large)
        # One notification at a time, so that two of a burst cannot both pass the cooldown.
        async with retrain_lock:
            now = clock()
            try:
                decision = decide_alertmanager(body, settings, retrain.last_sent, now)
            except PayloadError as error:
                return respond("alertmanager", 400, "refused", str(error), check="payload")
            response = await act("alertmanager", decision, settings.github.retrain_event, None)
            if response.status_code == 202:
                retrain.last_sent = now
            return response

    async def livez(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/mlflow", mlflow_webhook, methods=["POST"]),
            Route("/alertmanager", alertmanager_webhook, methods=["POST"]),
            Route("/livez", livez, methods=["GET"]),
        ]
    )


def serve(settings: ReleaseSettings, secrets: ReleaseSecrets) -> None:
    """Run the receiver with uvicorn until interrupted (one process, see ReplayGuard)."""
    import uvicorn

    dispatcher = GitHubDispatcher(settings.github, settings.repository(), secrets.github_token)
    app = create_app(settings, secrets, dispatcher)
    log_event(
        "webhook_receiver_started",
        host=settings.host,
        port=settings.port,
        registered_model=settings.registered_model,
        alias=settings.alias,
        repository=settings.repository(),
        dispatch_url=dispatcher.url,
        alertmanager_route=bool(secrets.alertmanager_tokens),
    )
    uvicorn.run(app, host=settings.host, port=settings.port, access_log=False, log_level="warning")
