"""HTTP routes mounted into the BentoML service: predict, predict_batch, explain, feedback, page.

They are plain Starlette routes rather than @bentoml.api methods because they take raw image
bytes as well as multipart files, and must size-check the body while it streams in. They
still pass through BentoML's middleware (tracing, timeouts, concurrency limit, API key).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Protocol

import anyio
import anyio.to_thread
import bentoml
import sentry_sdk
from bentoml.exceptions import ServiceUnavailable
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, Router

from aidetector.config.serve import ServeSettings
from aidetector.errors import AidetectorError
from aidetector.serving.access import caller_of
from aidetector.serving.decoding import open_upload
from aidetector.serving.feedback_store import StoredFeedback
from aidetector.serving.limits import (
    ClientDisconnected,
    RequestRejected,
    Upload,
    UploadIOError,
    read_body,
    read_image_form,
    read_uploads,
)
from aidetector.serving.logging_json import log_event
from aidetector.serving.metrics import service_metrics
from aidetector.serving.verdicts import Predictor, image_ids

FEEDBACK_MAX_BYTES = 4096
# A feedback form holds label and image_id; room for a client's extra field or two.
FEEDBACK_FORM_FIELDS = 4
# nginx's "client closed request": what a request whose client left is counted as. Nobody
# receives it; it keeps the departure out of the 5xx rate and out of Sentry.
CLIENT_CLOSED_REQUEST = 499
IMAGE_ID = re.compile(r"^[0-9a-f]{64}$")
INDEX_HTML = resources.files("aidetector.serving").joinpath("static/index.html").read_text()


class NotReadyError(Exception):
    """The model is still loading (or failed to load)."""


class DetectorService(Protocol):
    """What the routes need from the BentoML service instance."""

    settings: ServeSettings

    def predictor(self, request: Request) -> Predictor:
        """Return the predictor, raising NotReadyError until the model is warm."""
        ...


def client_disconnected(endpoint: str, gone: ClientDisconnected) -> Response:
    """Log (info) and count a client that left mid-request; the 499 reaches nobody."""
    service_metrics().errors.labels(type="client_disconnected").inc()
    log_event("client_disconnected", endpoint=endpoint, received_bytes=gone.received)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def upload_failed(endpoint: str, failed: UploadIOError) -> JSONResponse:
    """Log and count a server-side I/O error while receiving; 503 with Retry-After."""
    service_metrics().errors.labels(type="upload_failed").inc()
    log_event("upload_failed", logging.ERROR, endpoint=endpoint, error=str(failed))
    return error_response(503, "the server could not receive the request; retry shortly")


def error_response(status: int, message: str) -> JSONResponse:
    """A JSON error body that names the problem."""
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


# What a route computes from the predictor, its uploads and the start time: the JSON body.
Answer = Callable[[Predictor, list[Upload], float], Awaitable[Any]]


async def _answer(request: Request, endpoint: str, batch: bool, compute: Answer) -> Response:
    started = time.perf_counter()
    metrics = service_metrics()
    service: DetectorService = bentoml.get_current_service()
    try:
        predictor = service.predictor(request)
        uploads = await read_uploads(request, service.settings, batch)
        response: Response = JSONResponse(await compute(predictor, uploads, started))
    except RequestRejected as rejected:
        response = error_response(rejected.status, rejected.message)
        metrics.errors.labels(type=rejected.reason).inc()
        log_event(
            "rejected",
            endpoint=endpoint,
            status=rejected.status,
            reason=rejected.reason,
            message=rejected.message,
        )
    except ClientDisconnected as gone:
        response = client_disconnected(endpoint, gone)
    except UploadIOError as failed:
        response = upload_failed(endpoint, failed)
    except NotReadyError as error:
        metrics.errors.labels(type="not_ready").inc()
        response = error_response(503, str(error))
    except ServiceUnavailable:
        metrics.errors.labels(type="overloaded").inc()
        response = error_response(503, "the service is overloaded; retry shortly")
    except Exception as error:  # a bug or a broken dependency: report it, keep the worker
        metrics.errors.labels(type="internal").inc()
        sentry_sdk.capture_exception(error)
        log_event("error", logging.ERROR, endpoint=endpoint, error=repr(error))
        response = error_response(500, "internal error; it has been logged")
    metrics.requests.labels(endpoint=endpoint, status=str(response.status_code)).inc()
    elapsed = time.perf_counter() - started
    if endpoint == "explain":
        metrics.explain_latency.observe(elapsed)
    else:
        metrics.latency.labels(endpoint=endpoint).observe(elapsed)
    return response


async def _verdict(predictor: Predictor, uploads: list[Upload], started: float) -> Any:
    (result,) = await predictor.predict(uploads, started)  # read_uploads gave exactly one
    return result


async def _batch_verdicts(predictor: Predictor, uploads: list[Upload], started: float) -> Any:
    results = await predictor.predict(uploads, started)
    return {"results": results, "count": len(results)}


async def _explanation(predictor: Predictor, uploads: list[Upload], started: float) -> Any:
    return await predictor.explain(uploads[0], started)


async def predict(request: Request) -> Response:
    """POST /predict: one image as raw bytes or a multipart file."""
    return await _answer(request, "predict", False, _verdict)


async def predict_batch(request: Request) -> Response:
    """POST /predict_batch: up to max_batch_images multipart files, answered in order."""
    return await _answer(request, "predict_batch", True, _batch_verdicts)


async def explain(request: Request) -> Response:
    """POST /explain: one image like /predict; the verdict plus a Grad-CAM overlay of it."""
    return await _answer(request, "explain", False, _explanation)


def _parse_feedback_json(body: bytes) -> tuple[object, object]:
    try:
        payload = json.loads(body)
    except ValueError as error:  # not UTF-8 either: UnicodeDecodeError is a ValueError
        raise RequestRejected(400, "bad_feedback", f"body is not JSON: {error}") from error
    except RecursionError as error:  # [[[[... nested deeper than the parser can go
        raise RequestRejected(
            400, "bad_feedback", 'body is nested too deeply; send {"image_id": ..., "label": ...}'
        ) from error
    if not isinstance(payload, dict):
        raise RequestRejected(400, "bad_feedback", 'send {"image_id": ..., "label": ...}')
    return payload.get("image_id"), payload.get("label")


def _check_feedback(
    image_id: object, label: object, class_names: tuple[str, ...]
) -> tuple[str, str]:
    if not isinstance(image_id, str) or not IMAGE_ID.match(image_id):
        raise RequestRejected(
            400,
            "bad_feedback",
            f"image_id must be the 64-hex sha256 from /predict, got {image_id!r}",
        )
    if not isinstance(label, str) or label.upper() not in class_names:
        raise RequestRejected(
            400, "bad_feedback", f"label must be one of {', '.join(class_names)}, got {label!r}"
        )
    return image_id, label.upper()


async def _read_feedback(
    request: Request, settings: ServeSettings, class_names: tuple[str, ...]
) -> tuple[str, str, Upload | None]:
    """Return (image_id, label, the image if one came): JSON, or a multipart form.

    A form carries `label`, the image as its one file, and optionally `image_id`, which must
    then be the image's sha256 (what /predict returned for it).
    """
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        body = await read_body(request, FEEDBACK_MAX_BYTES, settings)
        image_id, label = _check_feedback(*_parse_feedback_json(body), class_names)
        return image_id, label, None
    fields, upload = await read_image_form(request, settings, FEEDBACK_FORM_FIELDS)
    sent_id = fields.get("image_id")
    if upload is None:
        image_id, label = _check_feedback(sent_id, fields.get("label"), class_names)
        return image_id, label, None
    own_id = (await anyio.to_thread.run_sync(image_ids, [upload]))[0]
    if sent_id is not None and sent_id != own_id:
        raise RequestRejected(
            400,
            "bad_feedback",
            f"image_id {sent_id!r} is not the sha256 of the image sent ({own_id}); send the "
            "same bytes as to /predict, or leave image_id out",
        )
    image_id, label = _check_feedback(own_id, fields.get("label"), class_names)
    return image_id, label, upload


class FeedbackStoreError(Exception):
    """The feedback store could not be written (503: retry)."""


async def _store_image(
    predictor: Predictor, upload: Upload, image_id: str, label: str, record: dict[str, Any]
) -> StoredFeedback | None:
    """Write a labelled image to the feedback store; None when no store is configured."""
    store = predictor.feedback_store
    if store is None:
        return None
    # Formats and the pixel cap, as /predict.
    image = open_upload(upload, predictor.settings, predictor.preprocessing)
    image_format = str(image.format)
    image.close()
    try:
        return await anyio.to_thread.run_sync(
            store.save, image_id, upload.data, image_format, label, record
        )
    except (OSError, AidetectorError) as error:
        raise FeedbackStoreError(f"{type(error).__name__}: {error}") from error


async def feedback(request: Request) -> Response:
    """POST /feedback: the true label of an earlier prediction, as JSON {image_id, label} or
    a multipart form (label, the image, optionally image_id) that also stores the image."""
    metrics = service_metrics()
    service: DetectorService = bentoml.get_current_service()
    try:
        predictor = service.predictor(request)
        identity = predictor.identity
        image_id, label, upload = await _read_feedback(
            request, service.settings, identity.class_order.names
        )
        predicted = await predictor.known_verdict(image_id)
        if predicted is None:
            raise RequestRejected(
                404,
                "unknown_image_id",
                f"unknown image_id {image_id}: only ids returned by /predict "
                f"for model version {identity.version} are accepted",
            )
        source = caller_of(request.scope).source  # the key's source, checked and rate-limited
        stored = None
        if upload is not None:
            record = {"prediction": predicted, "model_version": identity.version, "source": source}
            stored = await _store_image(predictor, upload, image_id, label, record)
        outcome = predictor.feedback.record(image_id, label, predicted, source)
    except RequestRejected as rejected:
        metrics.errors.labels(type=rejected.reason).inc()
        return error_response(rejected.status, rejected.message)
    except ClientDisconnected as gone:
        return client_disconnected("feedback", gone)
    except UploadIOError as failed:
        return upload_failed("feedback", failed)
    except FeedbackStoreError as failed:
        metrics.errors.labels(type="feedback_store_failed").inc()
        log_event("feedback_store_failed", logging.ERROR, image_id=image_id, error=str(failed))
        return error_response(503, "the labelled image could not be stored; retry shortly")
    except NotReadyError as error:
        return error_response(503, str(error))
    log_event(
        "feedback",
        image_id=image_id,
        label=label,
        prediction=outcome.predicted,
        correct=outcome.correct,
        rolling_accuracy=outcome.accuracy,
        samples=outcome.samples,
        source=source,
        sources=outcome.sources,
        model_version=identity.version,
        stored=stored.path if stored else None,
        stored_new=stored.created if stored else None,
    )
    return JSONResponse(
        {
            "image_id": image_id,
            "label": label,
            "prediction": outcome.predicted,
            "correct": outcome.correct,
            "model_accuracy": outcome.accuracy,
            "samples": outcome.samples,
            "sources": outcome.sources,
            "sources_needed": outcome.sources_needed,
            "model_version": identity.version,
            "stored": stored is not None,
        }
    )


async def index(_: Request) -> Response:
    """GET /: the upload page."""
    return HTMLResponse(INDEX_HTML)


# A Router, not a Starlette app: mounted as-is, request.app stays BentoML's own app, which
# is where the batching dispatcher of the tensor API is found (see bentoml_internals.py).
router = Router(
    routes=[
        Route("/", index, methods=["GET"]),
        Route("/predict", predict, methods=["POST"]),
        Route("/predict_batch", predict_batch, methods=["POST"]),
        Route("/explain", explain, methods=["POST"]),
        Route("/feedback", feedback, methods=["POST"]),
    ]
)
