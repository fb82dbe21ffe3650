"""PredictionCache: what one image gave, by sha256 of its bytes and the model, in Redis.

The key names the registered model, its version and the sha256 of the weights that ran, so
two models (or two imports of one version with other weights) sharing a Redis never answer
with each other's verdicts.

The cache is an optimisation, never a dependency. Every Redis call has a short timeout;
a failure is counted, warned about (rate-limited) and answered as a miss, and the cache
is then skipped for a while, so an outage costs one timeout, not one per request.

The skip is a one-failure circuit breaker, kept by hand (two lines: _failed sets the
deadline, _available reads it) because no maintained library fits: redis-py's Retry and
backoff retry a call, which would multiply the timeout instead of skipping Redis; its
circuit breaker (redis.multidb, which wraps pybreaker) switches between databases rather
than skipping one; pybreaker guards asyncio code only through Tornado; the asyncio forks
(aiobreaker, asyncbreaker) are a dormant fork and a new one-person project. None would also
count skipped calls or drop the stale pooled connections, which this needs.

A value is the compact JSON array `[prob_fake, domain_score, width, height]`: everything the
verdict needs, so that a hit neither runs the model nor opens the image. domain_score is null
for a model without a domain profile. A value that does not parse as exactly that (an older
format, or anything someone else wrote under the key) is a miss, never an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from aidetector.serving.logging_json import RateLimitedWarner
from aidetector.serving.metrics import ServiceMetrics

# v2: the value became a JSON array; the old prefix held bare floats, which are never read.
KEY_PREFIX = "aidetector:v2:prediction"
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ModelKey:
    """What a cached verdict belongs to: registered model, version, sha256 of the weights."""

    registered_model: str
    version: str
    weights_sha256: str

    def __post_init__(self) -> None:
        if not SHA256_HEX.match(self.weights_sha256):
            raise ValueError(f"weights_sha256 must be 64 hex digits, got {self.weights_sha256!r}")

    def prefix(self) -> str:
        """Return the key prefix of this model's verdicts (name and version URL-quoted)."""
        name, version = quote(self.registered_model, safe=""), quote(self.version, safe="")
        return f"{KEY_PREFIX}:{name}:{version}:{self.weights_sha256}"


@dataclass(frozen=True)
class CachedPrediction:
    """One image's model outputs and native size: all a verdict is built from."""

    prob_fake: float
    domain_score: float  # NaN when the model has no domain profile
    width: int
    height: int

    def encode(self) -> str:
        """Return the compact JSON array stored in Redis."""
        domain_score = self.domain_score if math.isfinite(self.domain_score) else None
        return json.dumps(
            [self.prob_fake, domain_score, self.width, self.height], separators=(",", ":")
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> CachedPrediction | None:
        """Parse a stored value; None when it is not a value this version wrote."""
        try:
            value: Any = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or absurdly nested
            return None
        if not isinstance(value, list) or len(value) != 4:
            return None
        prob_fake, domain_score, width, height = value
        prob_fake = _finite_float(prob_fake)
        if prob_fake is None or not 0.0 <= prob_fake <= 1.0:
            return None
        if domain_score is None:
            domain_score = math.nan
        else:
            domain_score = _finite_float(domain_score)
            if domain_score is None or domain_score < 0.0:
                return None
        if not (_is_side(width) and _is_side(height)):
            return None
        return cls(prob_fake, domain_score, width, height)


def _finite_float(value: object) -> float | None:
    # bool is an int in Python, but true/false in a stored value is garbage, not 1/0.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return number if math.isfinite(number) else None


def _is_side(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def cache_key(model: ModelKey, image_id: str) -> str:
    """Key of one verdict; a new champion, or other weights, never hits old ones."""
    return f"{model.prefix()}:{image_id}"


class PredictionCache:
    """Redis-backed verdict cache; with no URL every lookup is a miss and nothing is stored."""

    def __init__(
        self,
        url: str | None,
        ttl_s: int,
        timeout_s: float,
        retry_after_s: float,
        metrics: ServiceMetrics,
        warner: RateLimitedWarner,
    ) -> None:
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self.metrics = metrics
        self.warner = warner
        # Its own limiter: a burst of bad values must not silence the next outage warning.
        self.invalid_warner = RateLimitedWarner(warner.interval_s)
        self._skip_until = 0.0
        self.client: Redis | None = None
        if url:
            # No retries: a retry would multiply the timeout that this cache exists to bound.
            self.client = Redis.from_url(
                url,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
            )

    @property
    def enabled(self) -> bool:
        """True when REDIS_URL was given."""
        return self.client is not None

    def _available(self, operation: str) -> bool:
        if self.client is None:
            return False
        if time.monotonic() < self._skip_until:
            self.metrics.cache_errors.labels(operation=f"{operation}_skipped").inc()
            return False
        return True

    async def _failed(self, operation: str, error: BaseException) -> None:
        self._skip_until = time.monotonic() + self.retry_after_s
        self.metrics.cache_errors.labels(operation=operation).inc()
        self.warner.warn(
            "cache_unavailable",
            operation=operation,
            error=f"{type(error).__name__}: {error}" if str(error) else type(error).__name__,
            retry_after_s=self.retry_after_s,
        )
        # Drop every pooled connection: after a restart each stale one would fail once more,
        # and each failure would skip the cache for another retry_after_s.
        assert self.client is not None
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(self.timeout_s):
                await self.client.connection_pool.disconnect()

    async def get_many(
        self, model: ModelKey, image_ids: Sequence[str], count: bool = True
    ) -> list[CachedPrediction | None]:
        """Return the cached prediction of each id (None on a miss, bad value or Redis failure).

        count=False leaves the hit/miss counters alone (lookups that are not predictions).
        """
        if not image_ids or not self._available("get"):
            if self.enabled and count:
                self.metrics.cache_misses.inc(len(image_ids))
            return [None] * len(image_ids)
        assert self.client is not None
        try:
            async with asyncio.timeout(self.timeout_s):
                raw = await self.client.mget([cache_key(model, i) for i in image_ids])
        except (RedisError, OSError, TimeoutError) as error:
            await self._failed("get", error)
            if count:
                self.metrics.cache_misses.inc(len(image_ids))
            return [None] * len(image_ids)
        values = [CachedPrediction.decode(v) if v is not None else None for v in raw]
        invalid = sum(v is None for v in values) - sum(v is None for v in raw)
        if invalid:
            self.invalid_warner.warn(
                "cache_value_invalid",
                count=invalid,
                hint="values under this key prefix that are not [prob_fake, domain_score, width, "
                "height] are recomputed; is another program writing to the same Redis?",
            )
        if not count:
            return values
        hits = sum(v is not None for v in values)
        if hits:
            self.metrics.cache_hits.inc(hits)
        if hits < len(values):
            self.metrics.cache_misses.inc(len(values) - hits)
        return values

    async def set_many(self, model: ModelKey, predictions: dict[str, CachedPrediction]) -> None:
        """Store predictions with the TTL; failures are counted and otherwise ignored."""
        if not predictions or not self._available("set"):
            return
        assert self.client is not None
        try:
            async with asyncio.timeout(self.timeout_s):
                if len(predictions) == 1:  # the common case: skip the pipeline's overhead
                    ((image_id, value),) = predictions.items()
                    await self.client.set(cache_key(model, image_id), value.encode(), ex=self.ttl_s)
                    return
                async with self.client.pipeline(transaction=False) as pipe:
                    for image_id, value in predictions.items():
                        pipe.set(cache_key(model, image_id), value.encode(), ex=self.ttl_s)
                    await pipe.execute()
        except (RedisError, OSError, TimeoutError) as error:
            await self._failed("set", error)

    async def close(self) -> None:
        """Close the connection pool."""
        if self.client is not None:
            await self.client.aclose()
