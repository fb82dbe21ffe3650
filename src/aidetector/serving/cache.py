"""PredictionCache: P(FAKE) by sha256 of the image bytes and model version, in Redis.

The cache is an optimisation, never a dependency. Every Redis call has a short timeout;
a failure is counted, warned about (rate-limited) and answered as a miss, and the cache
is then skipped for a while, so an outage costs one timeout, not one per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from aidetector.serving.logging_json import RateLimitedWarner
from aidetector.serving.metrics import ServiceMetrics

KEY_PREFIX = "aidetector:prediction"


def cache_key(model_version: str, image_id: str) -> str:
    """Key of one verdict; the model version in it means a new champion never hits old ones."""
    return f"{KEY_PREFIX}:{model_version}:{image_id}"


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
        self, model_version: str, image_ids: Sequence[str], count: bool = True
    ) -> list[float | None]:
        """Return the cached P(FAKE) of each id (None on a miss or a Redis failure).

        count=False leaves the hit/miss counters alone (lookups that are not predictions).
        """
        if not image_ids or not self._available("get"):
            if self.enabled and count:
                self.metrics.cache_misses.inc(len(image_ids))
            return [None] * len(image_ids)
        assert self.client is not None
        try:
            async with asyncio.timeout(self.timeout_s):
                raw = await self.client.mget([cache_key(model_version, i) for i in image_ids])
        except (RedisError, OSError, TimeoutError) as error:
            await self._failed("get", error)
            if count:
                self.metrics.cache_misses.inc(len(image_ids))
            return [None] * len(image_ids)
        values = [float(v) if v is not None else None for v in raw]
        if not count:
            return values
        hits = sum(v is not None for v in values)
        if hits:
            self.metrics.cache_hits.inc(hits)
        if hits < len(values):
            self.metrics.cache_misses.inc(len(values) - hits)
        return values

    async def set_many(self, model_version: str, prob_fake: dict[str, float]) -> None:
        """Store verdicts with the TTL; failures are counted and otherwise ignored."""
        if not prob_fake or not self._available("set"):
            return
        assert self.client is not None
        try:
            async with asyncio.timeout(self.timeout_s):
                if len(prob_fake) == 1:  # the common case: skip the pipeline's overhead
                    ((image_id, value),) = prob_fake.items()
                    await self.client.set(
                        cache_key(model_version, image_id), repr(value), ex=self.ttl_s
                    )
                    return
                async with self.client.pipeline(transaction=False) as pipe:
                    for image_id, value in prob_fake.items():
                        pipe.set(cache_key(model_version, image_id), repr(value), ex=self.ttl_s)
                    await pipe.execute()
        except (RedisError, OSError, TimeoutError) as error:
            await self._failed("set", error)

    async def close(self) -> None:
        """Close the connection pool."""
        if self.client is not None:
            await self.client.aclose()
