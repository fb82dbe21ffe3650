"""The BentoML service: `bentoml serve aidetector.serving.service:AIDetector`.

One service, one model. The batchable `infer_arrays` API does only tensor work; the routes
in routes.py do everything per request (limits, hashing, cache, logs, metrics) and feed it
through BentoML's adaptive batcher (bentoml_internals.py). The model loads in a background thread
so that /livez answers at once while /readyz stays 503 until a warm-up batch has run.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import bentoml
import numpy as np
import sentry_sdk
from bentoml.exceptions import InvalidArgument, ServiceUnavailable
from starlette.requests import Request

from aidetector.config.serve import Secrets, load_serve_settings
from aidetector.errors import AidetectorError
from aidetector.explain import Explainer
from aidetector.serving.access import AccessMiddleware, AccessPolicy
from aidetector.serving.bentoml_internals import (
    find_batch_runner,
    label_http_metrics_by_route,
    trace_requests_as_one_span,
)
from aidetector.serving.cache import PredictionCache
from aidetector.serving.drift import DriftMonitor
from aidetector.serving.feedback import FeedbackTracker
from aidetector.serving.feedback_store import FeedbackStore
from aidetector.serving.logging_json import RateLimitedWarner, log_event
from aidetector.serving.metrics import (
    initialise_label_values,
    route_label,
    service_metrics,
    start_resource_sampler,
)
from aidetector.serving.model_runtime import InferenceEngine, identity_from_labels
from aidetector.serving.routes import NotReadyError, router
from aidetector.serving.sentry import init_sentry
from aidetector.serving.verdicts import Predictor

# Read at import: BentoML needs batching and traffic settings when it decorates the class.
# A bad setting stops `bentoml build` and `bentoml serve` alike, with one line.
try:
    SETTINGS = load_serve_settings()
except AidetectorError as bad_settings:
    sys.exit(f"ai-image-detector: {bad_settings}")
# Keys are not needed to build a Bento, only to serve one: a refusal is kept here and
# raised by the deployment hook below, when `bentoml serve` starts and before any worker.
try:
    ACCESS = AccessPolicy.from_secrets(Secrets.from_env(), SETTINGS.allow_anonymous)
    REFUSAL: str | None = None
except AidetectorError as refused:
    ACCESS, REFUSAL = AccessPolicy.closed(), f"ai-image-detector: refusing to start: {refused}"
TENSOR_API = "infer_arrays"
# Before BentoML builds the app: its HTTP metrics are labelled by route, so random URLs
# cannot grow /metrics, and a request is traced as one span (bentoml_internals.py).
label_http_metrics_by_route(route_label)
trace_requests_as_one_span()


@bentoml.service(
    name="ai-image-detector",
    workers=SETTINGS.workers,
    resources={"gpu": SETTINGS.gpus} if SETTINGS.gpus else None,
    traffic={"timeout": SETTINGS.timeout_s, "max_concurrency": SETTINGS.max_concurrency},
    logging={"access": {"enabled": SETTINGS.access_log}},
)
@bentoml.asgi_app(router, path="/")
class AIDetector:
    """Serves the champion: predict, explain, feedback, the page, health and metrics."""

    model_ref = bentoml.models.BentoModel(SETTINGS.model_tag)

    def __init__(self) -> None:
        self.settings = SETTINGS
        secrets = Secrets.from_env()
        self.sentry_on = init_sentry(secrets.sentry_dsn)
        self.metrics = service_metrics()
        initialise_label_values(self.metrics)
        self.metrics.ready.set(0)
        access = ACCESS.summary()
        if ACCESS.anonymous:
            log_event(
                "access_anonymous",
                logging.WARNING,
                hint="serve.allow_anonymous is true and API_KEY is unset: anyone who can reach "
                "this service may predict" + ("" if ACCESS.feedback_keys else " and send feedback"),
                **access,
            )
        else:
            log_event("access", **access)
        self.cache = PredictionCache(
            secrets.redis_url,
            ttl_s=SETTINGS.cache_ttl_s,
            timeout_s=SETTINGS.cache_timeout_s,
            retry_after_s=SETTINGS.cache_retry_after_s,
            metrics=self.metrics,
            warner=RateLimitedWarner(SETTINGS.warning_interval_s),
        )
        self.engine: InferenceEngine | None = None
        self.load_error: str | None = None
        self._predictor: Predictor | None = None
        threading.Thread(target=self._load, name="model-loader", daemon=True).start()

    def _load(self) -> None:
        """Load the model, warm it up, then build the predictor (readiness flips here)."""
        try:
            stored = self.model_ref
            engine = InferenceEngine(
                Path(stored.path),
                device=SETTINGS.device,
                precision=SETTINGS.precision,
                cpu_threads=SETTINGS.cpu_threads,
            )
            identity = identity_from_labels(
                dict(stored.info.labels),
                dict(stored.info.metadata),
                stored.tag.name,
                engine.precision,
                engine.loaded.class_order,
                engine.weights_sha256,
            )
            engine.warm_up(SETTINGS.max_batch_size)
            start_resource_sampler(self.metrics, gpu=engine.device.startswith("cuda"))
            feedback = FeedbackTracker(
                SETTINGS.feedback_memory,
                SETTINGS.feedback_window,
                identity.version,
                identity.registered_accuracy,
                self.metrics,
                SETTINGS.feedback_min_sources,
            )
            reference = engine.loaded.drift
            drift = (
                DriftMonitor(
                    reference,
                    self.metrics,
                    SETTINGS.drift_window,
                    SETTINGS.drift_min_samples,
                    SETTINGS.drift_update_every,
                    SETTINGS.drift_psi_alert,
                    RateLimitedWarner(SETTINGS.warning_interval_s),
                )
                if reference is not None
                else None
            )
            self.engine = engine
            self._predictor = Predictor(
                SETTINGS,
                engine.preprocessing,
                identity,
                self.cache,
                feedback,
                self.metrics,
                engine.check_domain,
                explainer=Explainer(
                    engine.loaded, SETTINGS.explain_concurrency, SETTINGS.threshold
                ),
                drift=drift,
                feedback_store=(
                    FeedbackStore(SETTINGS.feedback_store, identity.class_order.names)
                    if SETTINGS.feedback_store
                    else None
                ),
            )
            self.metrics.ready.set(1)
            if self.sentry_on:
                sentry_sdk.set_tag("model_version", identity.version)
            log_event(
                "model_ready",
                model_tag=str(stored.tag),
                model_version=identity.version,
                model=identity.readable_name,
                device=engine.device,
                precision=engine.precision,
                cache=self.cache.enabled,
                anonymous=ACCESS.anonymous,
                sentry=self.sentry_on,
                drift_features=list(reference.features) if reference is not None else [],
                feedback_store=SETTINGS.feedback_store or None,
            )
        except Exception as error:  # surfaced through /livez, the log and Sentry
            self.load_error = f"{type(error).__name__}: {error}"
            sentry_sdk.capture_exception(error)
            log_event("model_load_failed", logging.ERROR, error=self.load_error)

    def predictor(self, request: Request) -> Predictor:
        """Return the predictor bound to BentoML's batcher; NotReadyError while loading."""
        predictor = self._predictor
        if predictor is None:
            if self.load_error:
                raise NotReadyError(f"the model failed to load: {self.load_error}")
            raise NotReadyError("the model is loading; retry when /readyz answers 200")
        if predictor.run_batch is None:
            # The dispatcher exists only once BentoML has built its app around the service.
            predictor.run_batch = find_batch_runner(
                request.app, TENSOR_API, SETTINGS.max_batch_wait_ms / 1000.0
            )
        return predictor

    @bentoml.api(
        batchable=True,
        batch_dim=0,
        max_batch_size=SETTINGS.max_batch_size,
        max_latency_ms=SETTINGS.max_latency_ms,
    )
    def infer_arrays(self, images: np.ndarray) -> np.ndarray:
        """Float32 (N, 2) for a uint8 (N, H, W, 3) batch: [P(FAKE), domain score] per image.

        Tensor work only, nothing per request; the domain_score is NaN for a model without a
        domain profile. The predictor judges the domain, since that needs the native size.
        """
        engine = self.engine
        if engine is None:
            raise ServiceUnavailable("the model is loading")
        # Checked by hand, not with bentoml.validators (Shape, DType on an Annotated type):
        # those convert JSON input rather than check arrays, are fixed when the class is
        # decorated while the side comes from the model loaded later, and the routes reach
        # this method through the in-process batcher, which skips input validation.
        size = engine.image_size
        if images.dtype != np.uint8 or images.shape[1:] != (size, size, 3):
            raise InvalidArgument(
                f"expected uint8 (N, {size}, {size}, 3), got {images.dtype} {images.shape}"
            )
        return engine.predict(images)

    @bentoml.on_deployment
    def refuse_without_access() -> None:
        """Stop `bentoml serve` without a usable API key: one line on stderr, exit status 1.

        This runs once in the serving process before any worker starts. Kubernetes shows the
        exit as CrashLoopBackOff with that line as the container's termination message
        (docs/deployment.md); an exit surfaces there, failing probes would not.
        """
        if REFUSAL is not None:
            sys.exit(REFUSAL)

    def __is_ready__(self) -> bool:
        """Ready once the model is loaded and a warm-up batch has run."""
        return self._predictor is not None

    def __is_alive__(self) -> bool:
        """Dead (so Kubernetes restarts it) when the model could not be loaded."""
        return self.load_error is None

    @bentoml.on_shutdown
    async def close_cache(self) -> None:
        """Close the Redis pool."""
        await self.cache.close()


# mypy does not apply class decorators, so it misses that @bentoml.service made AIDetector a
# bentoml.Service, which has add_asgi_middleware.
AIDetector.add_asgi_middleware(  # type: ignore[attr-defined]
    AccessMiddleware, policy=ACCESS, feedback_rates=SETTINGS.feedback_rates, settings=SETTINGS
)
