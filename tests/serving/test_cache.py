"""PredictionCache against a real redis-server: keys, TTL, and outages that never raise."""

from __future__ import annotations

import asyncio
import threading
import time

from prometheus_client import REGISTRY

from aidetector.serving.cache import PredictionCache, cache_key
from aidetector.serving.logging_json import RateLimitedWarner
from aidetector.serving.metrics import service_metrics

from .conftest import RedisServer, free_port


def make_cache(url: str | None, **overrides: float) -> PredictionCache:
    options = {"ttl_s": 3600, "timeout_s": 0.05, "retry_after_s": 5.0, **overrides}
    return PredictionCache(
        url, metrics=service_metrics(), warner=RateLimitedWarner(60.0), **options
    )


def errors(operation: str) -> float:
    return REGISTRY.get_sample_value("cache_errors_total", {"operation": operation}) or 0.0


def test_verdicts_are_keyed_by_model_version_with_a_ttl(redis_server: RedisServer) -> None:
    async def scenario() -> tuple[list[float | None], list[float | None]]:
        cache = make_cache(redis_server.url, ttl_s=120)
        await cache.set_many("11", {"a" * 64: 0.25, "b" * 64: 0.75})
        same = await cache.get_many("11", ["a" * 64, "b" * 64, "c" * 64])
        promoted = await cache.get_many("12", ["a" * 64])
        await cache.close()
        return same, promoted

    same, promoted = asyncio.run(scenario())
    assert same == [0.25, 0.75, None]
    assert promoted == [None]  # a new champion never sees the old verdicts
    assert 0 < redis_server.client().ttl(cache_key("11", "a" * 64)) <= 120


def test_float_values_round_trip_exactly(redis_server: RedisServer) -> None:
    value = 0.1234567890123456789

    async def scenario() -> list[float | None]:
        cache = make_cache(redis_server.url)
        await cache.set_many("13", {"d" * 64: value})
        result = await cache.get_many("13", ["d" * 64])
        await cache.close()
        return result

    assert asyncio.run(scenario()) == [value]


def test_without_a_url_the_cache_is_off() -> None:
    cache = make_cache(None)
    assert not cache.enabled
    assert asyncio.run(cache.get_many("1", ["e" * 64])) == [None]


def test_redis_down_answers_misses_quickly_then_skips_it_for_a_while() -> None:
    before = errors("get")
    cache = make_cache(f"redis://127.0.0.1:{free_port()}/0", retry_after_s=60.0)

    async def scenario() -> tuple[float, list[float | None], list[float | None]]:
        started = time.perf_counter()
        first = await cache.get_many("1", ["f" * 64])
        elapsed = time.perf_counter() - started
        second = await cache.get_many("1", ["f" * 64])
        await cache.set_many("1", {"f" * 64: 0.5})
        return elapsed, first, second

    elapsed, first, second = asyncio.run(scenario())
    assert first == second == [None]
    assert elapsed < 1.0
    assert errors("get") == before + 1
    assert errors("get_skipped") >= 1 and errors("set_skipped") >= 1


def test_a_slow_redis_hits_the_short_timeout(redis_server: RedisServer) -> None:
    before = errors("get")
    sleeper = threading.Thread(
        target=lambda: redis_server.client().execute_command("DEBUG", "SLEEP", "0.6")
    )
    cache = make_cache(redis_server.url, timeout_s=0.1)

    async def scenario() -> tuple[float, list[float | None]]:
        sleeper.start()
        await asyncio.sleep(0.1)  # let DEBUG SLEEP block the server
        started = time.perf_counter()
        result = await cache.get_many("1", ["0" * 64])
        return time.perf_counter() - started, result

    elapsed, result = asyncio.run(scenario())
    sleeper.join()
    assert result == [None]
    assert elapsed < 0.4
    assert errors("get") == before + 1


def test_warnings_are_rate_limited() -> None:
    warner = RateLimitedWarner(60.0)
    assert warner.warn("cache_unavailable", operation="get") is True
    assert [warner.warn("cache_unavailable") for _ in range(5)] == [False] * 5
