"""The public-API alternative to serving/bentoml_internals.py, for benchmarks/serve_load.py.

The same service, except that /predict reaches the batched tensor API the way BentoML
documents it: a second service behind `bentoml.depends`, called through its proxy
(`await self.tensor.to_async.infer_arrays(...)`), so each batch crosses a process boundary
and is serialised both ways. Measured against the in-process dispatcher with
`python benchmarks/serve_load.py --public-batching`; not part of the product.

    AIDETECTOR_MODEL_TAG=name:version bentoml serve public_batching:PublicBatchingDetector \
        --working-dir benchmarks
"""

from __future__ import annotations

from pathlib import Path

import bentoml
import numpy as np
from starlette.requests import Request

from aidetector.serving.access import AccessMiddleware
from aidetector.serving.model_runtime import InferenceEngine
from aidetector.serving.routes import NotReadyError, router
from aidetector.serving.service import ACCESS, SETTINGS, AIDetector
from aidetector.serving.verdicts import Predictor


@bentoml.service(
    name="tensor-model",
    workers=1,
    traffic={"timeout": SETTINGS.timeout_s, "max_concurrency": SETTINGS.max_concurrency},
    logging={"access": {"enabled": SETTINGS.access_log}},
)
class TensorModel:
    """Only the batched forward pass, in its own process."""

    model_ref = bentoml.models.BentoModel(SETTINGS.model_tag)

    def __init__(self) -> None:
        self.engine = InferenceEngine(
            Path(self.model_ref.path),
            device=SETTINGS.device,
            precision=SETTINGS.precision,
            cpu_threads=SETTINGS.cpu_threads,
        )
        self.engine.warm_up(SETTINGS.max_batch_size)

    @bentoml.api(
        batchable=True,
        batch_dim=0,
        max_batch_size=SETTINGS.max_batch_size,
        max_latency_ms=SETTINGS.max_latency_ms,
    )
    def infer_arrays(self, images: np.ndarray) -> np.ndarray:
        """Float32 (N, 2): [P(FAKE), domain score] per uint8 (N, H, W, 3) image."""
        return self.engine.predict(images)


@bentoml.service(
    name="ai-image-detector-public-batching",
    workers=SETTINGS.workers,
    traffic={"timeout": SETTINGS.timeout_s, "max_concurrency": SETTINGS.max_concurrency},
    logging={"access": {"enabled": SETTINGS.access_log}},
)
@bentoml.asgi_app(router, path="/")
class PublicBatchingDetector(AIDetector.inner):  # type: ignore[name-defined,misc]
    """AIDetector whose routes batch through a `bentoml.depends` service."""

    tensor = bentoml.depends(TensorModel)

    def predictor(self, request: Request) -> Predictor:
        """The predictor, bound to the dependency's proxy instead of the in-process batcher."""
        predictor: Predictor | None = self._predictor
        if predictor is None:
            raise NotReadyError(self.load_error or "the model is loading")
        if predictor.run_batch is None:
            infer = self.tensor.to_async.infer_arrays

            async def run_batch(arrays: np.ndarray) -> np.ndarray:
                return np.asarray(await infer(images=arrays))

            predictor.run_batch = run_batch
        return predictor


PublicBatchingDetector.add_asgi_middleware(  # type: ignore[attr-defined]
    AccessMiddleware, policy=ACCESS, feedback_rates=SETTINGS.feedback_rates
)
