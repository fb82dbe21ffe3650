"""Verdicts for uploads: hash, cache, decode, batch, judge, log, count (one request's work).

Everything here runs once per image outside the batchable API, which only sees tensors.
In crop mode an image sends its inference_crops fixed crops through the batcher and its
verdict is their average (the same Preprocessing.average_crops as offline evaluation).
The verdict is REAL or FAKE, or UNCERTAIN when the image lies outside the model's training
domain (its native size, read from the header, or its domain score); `label` keeps the
plain REAL/FAKE guess for clients that predate the domain check.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import numpy as np

from aidetector.config.serve import ServeSettings
from aidetector.explain import OVERLAY_SIDE, Explainer, Explanation, render_overlay
from aidetector.models.domain import DomainCheck
from aidetector.models.drift import image_features
from aidetector.preprocessing import Preprocessing
from aidetector.serving.cache import CachedPrediction, PredictionCache
from aidetector.serving.decoding import decode_uploads
from aidetector.serving.drift import DriftMonitor
from aidetector.serving.feedback import FeedbackTracker
from aidetector.serving.feedback_store import FeedbackStore
from aidetector.serving.limits import Upload
from aidetector.serving.logging_json import log_event
from aidetector.serving.metrics import ServiceMetrics
from aidetector.serving.model_runtime import ModelIdentity

RunBatch = Callable[[np.ndarray], Awaitable[np.ndarray]]
# (domain score, native width, native height) -> in domain or not, and why.
CheckDomain = Callable[[float, int | None, int | None], DomainCheck]
UNCERTAIN = "UNCERTAIN"
# Hash big uploads off the event loop (hashlib releases the GIL for large buffers).
INLINE_HASH_BYTES = 1 << 20


def prediction_body(
    image_id: str,
    prediction: CachedPrediction,
    check: DomainCheck,
    threshold: float,
    identity: ModelIdentity,
    cached: bool,
    latency_ms: float,
) -> dict[str, Any]:
    """Return the JSON body of one prediction."""
    prob_fake = float(prediction.prob_fake)
    prob_real = 1.0 - prob_fake
    label = identity.class_order.label(prob_fake, threshold)
    return {
        "label": label,
        "verdict": label if check.in_domain else UNCERTAIN,
        "in_domain": check.in_domain,
        "reason": check.reason,
        "prob_fake": prob_fake,
        "prob_real": prob_real,
        "confidence": max(prob_fake, prob_real),
        "model": identity.as_response(),
        "cached": cached,
        "latency_ms": round(latency_ms, 3),
        "image_id": image_id,
    }


def image_ids(uploads: list[Upload]) -> list[str]:
    """Return the hex sha256 of each upload's bytes."""
    return [hashlib.sha256(upload.data).hexdigest() for upload in uploads]


class Predictor:
    """Answers /predict and /predict_batch for one loaded model."""

    def __init__(
        self,
        settings: ServeSettings,
        preprocessing: Preprocessing,
        identity: ModelIdentity,
        cache: PredictionCache,
        feedback: FeedbackTracker,
        metrics: ServiceMetrics,
        check_domain: CheckDomain,
        run_batch: RunBatch | None = None,
        explainer: Explainer | None = None,
        drift: DriftMonitor | None = None,
        feedback_store: FeedbackStore | None = None,
    ) -> None:
        self.settings = settings
        self.preprocessing = preprocessing
        self.identity = identity
        self.cache = cache
        self.feedback = feedback
        self.metrics = metrics
        self.check_domain = check_domain
        # Bound on the first request, once BentoML's batcher exists (see service.py).
        self.run_batch = run_batch
        # Shared by every request of this worker: big decodes run at most this many at once.
        self.decode_limiter = anyio.CapacityLimiter(settings.decode_concurrency)
        self.explainer = explainer
        # Explanations run in worker threads, this many at once: the event loop stays free.
        self.explain_limiter = anyio.CapacityLimiter(settings.explain_concurrency)
        # None for a model without a drift reference: nothing to compare with.
        self.drift = drift
        # Where /feedback writes labelled images; None when serve.feedback_store is "".
        self.feedback_store = feedback_store

    async def predict(self, uploads: list[Upload], started: float) -> list[dict[str, Any]]:
        """Return one verdict per upload, in order; bad input raises RequestRejected."""
        if sum(len(u.data) for u in uploads) > INLINE_HASH_BYTES:
            ids = await anyio.to_thread.run_sync(image_ids, uploads)
        else:
            ids = image_ids(uploads)
        model = self.identity.model_key
        predictions = await self.cache.get_many(model, ids)
        cached = [p is not None for p in predictions]
        misses = [i for i, p in enumerate(predictions) if p is None]
        if misses:
            decoded = await decode_uploads(
                [uploads[i] for i in misses],
                self.settings,
                self.preprocessing,
                self.decode_limiter,
            )
            assert self.run_batch is not None, "predictor used before it was bound"
            inputs = self.preprocessing.inference_inputs(decoded.arrays)
            # (N, 2) per image: P(FAKE) and domain score, each the mean over the image's crops.
            computed = self.preprocessing.average_crops(await self.run_batch(inputs))
            if self.drift is not None:
                # On the decoded arrays and header sizes the request has anyway.
                features = image_features(decoded.arrays, decoded.sizes)
                self.drift.add(np.column_stack([features, computed[:, 0]]))
            fresh: dict[str, CachedPrediction] = {}
            for i, (prob_fake, domain_score), (width, height) in zip(
                misses, computed.tolist(), decoded.sizes, strict=True
            ):
                predictions[i] = fresh[ids[i]] = CachedPrediction(
                    prob_fake, domain_score, width, height
                )
            await self.cache.set_many(model, fresh)
        latency_ms = (time.perf_counter() - started) * 1000.0
        results = []
        for image_id, prediction, hit in zip(ids, predictions, cached, strict=True):
            assert prediction is not None  # every miss was computed above
            check = self.check_domain(prediction.domain_score, prediction.width, prediction.height)
            result = prediction_body(
                image_id, prediction, check, self.settings.threshold, self.identity, hit, latency_ms
            )
            self._record(result, check)
            results.append(result)
        return results

    async def explain(self, upload: Upload, started: float) -> dict[str, Any]:
        """Return the verdict plus a Grad-CAM overlay of its label; bad input: RequestRejected.

        Never cached and never batched: the map needs a backward pass of its own.
        """
        assert self.explainer is not None, "the predictor has no explainer"
        image_id = (await anyio.to_thread.run_sync(image_ids, [upload]))[0]
        decoded = await decode_uploads(
            [upload], self.settings, self.preprocessing, self.decode_limiter
        )
        image = decoded.arrays[0]
        explanation, overlay = await anyio.to_thread.run_sync(
            self._explain_and_render, image, limiter=self.explain_limiter
        )
        width, height = decoded.sizes[0]
        prediction = CachedPrediction(
            explanation.prob_fake, explanation.domain_score, width, height
        )
        check = self.check_domain(prediction.domain_score, width, height)
        latency_ms = (time.perf_counter() - started) * 1000.0
        body = prediction_body(
            image_id, prediction, check, self.settings.threshold, self.identity, False, latency_ms
        )
        body["explanation"] = {
            "method": explanation.method,
            "class": explanation.label,
            "layer": explanation.layer,
            "map_shape": list(explanation.attribution.shape),
            "overlay_png": base64.b64encode(overlay).decode("ascii"),
            "overlay_size": [OVERLAY_SIDE, OVERLAY_SIDE],
        }
        log_event(
            "explanation",
            image_id=image_id,
            prediction=body["label"],
            prob_fake=body["prob_fake"],
            layer=explanation.layer,
            latency_ms=body["latency_ms"],
            model_version=self.identity.version,
        )
        return body

    def _explain_and_render(self, image: np.ndarray) -> tuple[Explanation, bytes]:
        assert self.explainer is not None
        explanation = self.explainer.explain(image)
        shown = self.preprocessing.centre_input(image)  # the pixels the map covers
        return explanation, render_overlay(shown, explanation)

    def _record(self, result: dict[str, Any], check: DomainCheck) -> None:
        self.metrics.predictions.labels(label=result["label"]).inc()
        if not check.in_domain:
            self.metrics.out_of_domain.labels(reason_kind=check.reason_kind).inc()
        self.feedback.remember(result["image_id"], result["label"])
        log_event(
            "inference",
            image_id=result["image_id"],
            prediction=result["label"],
            verdict=result["verdict"],
            in_domain=result["in_domain"],
            prob_fake=result["prob_fake"],
            confidence=result["confidence"],
            latency_ms=result["latency_ms"],
            model_version=self.identity.version,
            model=self.identity.readable_name,
            precision=self.identity.precision,
            cached=result["cached"],
        )

    async def known_verdict(self, image_id: str) -> str | None:
        """Return the label served for image_id here, or cached for this model version."""
        label = self.feedback.verdict(image_id)
        if label is not None:
            return label
        # Another worker or replica may have served it; the cache is shared.
        (cached,) = await self.cache.get_many(self.identity.model_key, [image_id], count=False)
        if cached is None:
            return None
        return self.identity.class_order.label(cached.prob_fake, self.settings.threshold)
