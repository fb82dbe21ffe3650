"""Baseline BentoML services for benchmarks/serve_load.py (not part of the product).

Floor: empty endpoints that take the same multipart upload as /predict and answer a
constant: `/floor` is a mounted Starlette route (the same transport as /predict) and
`/floor_api` is a plain @bentoml.api with a file parameter.
Naive: one request is one forward pass of the same model, no batching, cache, logs or metrics.

    bentoml serve serve_baselines:Floor --working-dir benchmarks
    AIDETECTOR_MODEL_TAG=name:version bentoml serve serve_baselines:Naive --working-dir benchmarks
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import anyio.to_thread
import bentoml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router

from aidetector.config.serve import load_serve_settings
from aidetector.serving.model_runtime import InferenceEngine

SETTINGS = load_serve_settings()
# The same framework configuration as the real service, so only the handlers differ.
SERVICE_CONFIG = {
    "workers": SETTINGS.workers,
    "traffic": {"timeout": SETTINGS.timeout_s, "max_concurrency": SETTINGS.max_concurrency},
    "logging": {"access": {"enabled": SETTINGS.access_log}},
}


async def read_file(request: Request) -> bytes:
    """The uploaded file's bytes (multipart), or the raw body."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = next(iter(form.values()))
        return await upload.read()  # type: ignore[union-attr]
    return await request.body()


async def floor(request: Request) -> Response:
    """Read the upload, answer a constant."""
    data = await read_file(request)
    return JSONResponse({"label": "REAL", "bytes": len(data)})


floor_router = Router(routes=[Route("/floor", floor, methods=["POST"])])


@bentoml.service(name="floor", **SERVICE_CONFIG)
@bentoml.asgi_app(floor_router, path="/")
class Floor:
    """The framework floor: no validation, hashing, cache, model, logs or metrics."""

    @bentoml.api
    def floor_api(self, file: Path) -> dict[str, object]:
        """BentoML's own multipart handling of the same upload."""
        return {"label": "REAL", "bytes": file.stat().st_size}


async def naive_predict(request: Request) -> Response:
    """Decode with the shared preprocessing and run one forward pass for this image alone."""
    service = bentoml.get_current_service()
    data = await read_file(request)
    array = service.engine.preprocessing.bytes_to_array(data)
    prob_fake = await anyio.to_thread.run_sync(
        service.engine.predict, array[None], limiter=service.limiter
    )
    return JSONResponse({"prob_fake": float(prob_fake[0, 0])})  # columns: P(FAKE), domain score


naive_router = Router(routes=[Route("/predict", naive_predict, methods=["POST"])])


@bentoml.service(name="naive", **SERVICE_CONFIG)
@bentoml.asgi_app(naive_router, path="/")
class Naive:
    """The naive baseline: one request, one forward pass, one at a time."""

    model_ref = bentoml.models.BentoModel(os.environ.get("AIDETECTOR_MODEL_TAG", "missing:tag"))

    def __init__(self) -> None:
        self.engine = InferenceEngine(
            Path(self.model_ref.path),
            device=SETTINGS.device,
            precision=SETTINGS.precision,
            cpu_threads=SETTINGS.cpu_threads,
        )
        self.engine.warm_up(1)
        # One forward at a time, as the real service's batch thread runs one batch at a time.
        self.limiter = anyio.CapacityLimiter(1)
