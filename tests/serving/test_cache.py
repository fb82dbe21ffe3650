"""PredictionCache against a real redis-server: keys, TTL, and outages that never raise."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest
from prometheus_client import REGISTRY

from aidetector.serving.cache import (
    KEY_PREFIX,
    CachedPrediction,
    ModelKey,
    PredictionCache,
    cache_key,
)
from aidetector.serving.logging_json import RateLimitedWarner
from aidetector.serving.metrics import service_metrics

from .conftest import RedisServer, free_port


def make_cache(url: str | None, **overrides: float) -> PredictionCache:
    options = {"ttl_s": 3600, "timeout_s": 0.05, "retry_after_s": 5.0, **overrides}
    return PredictionCache(
        url, metrics=service_metrics(), warner=RateLimitedWarner(60.0), **options
    )


Cached = list[CachedPrediction | None]
WEIGHTS = "ab" * 32


def model(version: str, name: str = "ai-image-detector", weights: str = WEIGHTS) -> ModelKey:
    return ModelKey(name, version, weights)


A = CachedPrediction(0.25, 3.5, 48, 40)
B = CachedPrediction(0.75, 12.0, 384, 320)


def errors(operation: str) -> float:
    return REGISTRY.get_sample_value("cache_errors_total", {"operation": operation}) or 0.0


def counter(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_verdicts_are_keyed_by_model_version_with_a_ttl(redis_server: RedisServer) -> None:
    async def scenario() -> tuple[Cached, Cached]:
        cache = make_cache(redis_server.url, ttl_s=120)
        await cache.set_many(model("11"), {"a" * 64: A, "b" * 64: B})
        same = await cache.get_many(model("11"), ["a" * 64, "b" * 64, "c" * 64])
        promoted = await cache.get_many(model("12"), ["a" * 64])
        await cache.close()
        return same, promoted

    same, promoted = asyncio.run(scenario())
    assert same == [A, B, None]
    assert promoted == [None]  # a new champion never sees the old verdicts
    assert 0 < redis_server.client().ttl(cache_key(model("11"), "a" * 64)) <= 120


def test_keys_carry_a_format_version_so_old_float_values_are_never_read() -> None:
    assert cache_key(model("11"), "a" * 64) == (
        f"aidetector:v2:prediction:ai-image-detector:11:{WEIGHTS}:{'a' * 64}"
    )
    assert KEY_PREFIX != "aidetector:prediction"  # where bare floats were stored


def test_models_sharing_a_redis_never_read_each_others_verdicts(
    redis_server: RedisServer,
) -> None:
    image_id = "a" * 64
    ours = model("7")
    others = [model("7", name="other-detector"), model("7", weights="cd" * 32), model("8")]

    async def scenario() -> list[Cached]:
        cache = make_cache(redis_server.url)
        await cache.set_many(ours, {image_id: A})
        results = [await cache.get_many(m, [image_id]) for m in [ours, *others]]
        await cache.close()
        return results

    assert asyncio.run(scenario()) == [[A], [None], [None], [None]]
    assert len({cache_key(m, image_id) for m in [ours, *others]}) == 4


@pytest.mark.parametrize(("name", "version"), [("a:b", "1"), ("a", "b:1"), ("a/b c", "1")])
def test_names_and_versions_are_quoted_so_keys_cannot_collide(name: str, version: str) -> None:
    key = cache_key(model(version, name=name), "a" * 64)
    assert key.count(":") == 6  # aidetector:v2:prediction:name:version:sha:image
    assert key != cache_key(model("1", name="a"), "a" * 64)


def test_a_model_key_needs_the_weights_sha256() -> None:
    with pytest.raises(ValueError, match="64 hex digits"):
        ModelKey("ai-image-detector", "1", "")


def test_values_are_a_compact_json_array_and_round_trip_exactly(
    redis_server: RedisServer,
) -> None:
    value = CachedPrediction(0.1234567890123456789, 27.123456789, 48, 40)

    async def scenario() -> Cached:
        cache = make_cache(redis_server.url)
        await cache.set_many(model("13"), {"d" * 64: value})
        result = await cache.get_many(model("13"), ["d" * 64])
        await cache.close()
        return result

    assert asyncio.run(scenario()) == [value]
    stored = redis_server.client().get(cache_key(model("13"), "d" * 64))
    assert stored == f"[{value.prob_fake!r},{value.domain_score!r},48,40]"


def test_a_model_without_a_domain_profile_stores_a_null_distance(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> Cached:
        cache = make_cache(redis_server.url)
        await cache.set_many(model("14"), {"e" * 64: CachedPrediction(0.5, math.nan, 48, 40)})
        result = await cache.get_many(model("14"), ["e" * 64])
        await cache.close()
        return result

    (result,) = asyncio.run(scenario())
    assert redis_server.client().get(cache_key(model("14"), "e" * 64)) == "[0.5,null,48,40]"
    assert result is not None and math.isnan(result.domain_score) and result.prob_fake == 0.5


GARBAGE = [
    "0.25",  # the format before v2: a bare float
    "not json",
    "[0.25, 1.0, 48]",  # too short
    "[0.25, 1.0, 48, 40, 1]",  # too long
    '["0.25", 1.0, 48, 40]',  # a string, not a number
    "[1.5, 1.0, 48, 40]",  # not a probability
    "[NaN, 1.0, 48, 40]",
    "[0.25, -1.0, 48, 40]",  # a negative domain_score
    "[0.25, Infinity, 48, 40]",
    "[true, 1.0, 48, 40]",  # JSON booleans are not numbers here
    "[0.25, 1.0, 48.5, 40]",  # a fractional side
    "[0.25, 1.0, 0, 40]",  # an empty side
    "[0.25, 1e999, 48, 40]",
    "[0.25, 1" + "0" * 400 + ", 48, 40]",  # an integer too large for a float
    '{"prob_fake": 0.25}',
    "[" * 100_000,  # nesting deep enough to exhaust the recursion limit
    "\xff\xfe",
]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_a_value_in_another_format_is_decoded_as_none(garbage: str) -> None:
    assert CachedPrediction.decode(garbage) is None


def test_garbage_under_a_key_is_a_counted_miss(redis_server: RedisServer) -> None:
    client = redis_server.client()
    ids = [f"{i:064x}" for i in range(len(GARBAGE))]
    for image_id, garbage in zip(ids, GARBAGE, strict=True):
        client.set(cache_key(model("15"), image_id), garbage)
    client.set(cache_key(model("15"), "f" * 64), b"\xff\xfe\x00")  # not even UTF-8
    good = "a" * 64
    client.set(cache_key(model("15"), good), A.encode())
    hits, misses = counter("cache_hits_total"), counter("cache_misses_total")

    async def scenario() -> Cached:
        cache = make_cache(redis_server.url)
        result = await cache.get_many(model("15"), [*ids, "f" * 64, good])
        await cache.close()
        return result

    assert asyncio.run(scenario()) == [None] * (len(GARBAGE) + 1) + [A]
    assert counter("cache_hits_total") == hits + 1
    assert counter("cache_misses_total") == misses + len(GARBAGE) + 1


def test_without_a_url_the_cache_is_off() -> None:
    cache = make_cache(None)
    assert not cache.enabled
    assert asyncio.run(cache.get_many(model("1"), ["e" * 64])) == [None]


def test_redis_down_answers_misses_quickly_then_skips_it_for_a_while() -> None:
    before = errors("get")
    cache = make_cache(f"redis://127.0.0.1:{free_port()}/0", retry_after_s=60.0)

    async def scenario() -> tuple[float, Cached, Cached]:
        started = time.perf_counter()
        first = await cache.get_many(model("1"), ["f" * 64])
        elapsed = time.perf_counter() - started
        second = await cache.get_many(model("1"), ["f" * 64])
        await cache.set_many(model("1"), {"f" * 64: A})
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

    async def scenario() -> tuple[float, Cached]:
        sleeper.start()
        await asyncio.sleep(0.1)  # let DEBUG SLEEP block the server
        started = time.perf_counter()
        result = await cache.get_many(model("1"), ["0" * 64])
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
