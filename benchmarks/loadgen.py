"""A small closed-loop HTTP load generator (aiohttp) for benchmarks/serve_load.py.

C workers each send a request, wait for the answer and send the next, for a fixed time.
Bodies are pre-encoded so that the client spends as little CPU as possible: it shares the
machine's cores with the server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
import numpy as np

Body = tuple[bytes, dict[str, str]]


@dataclass
class LoadResult:
    """Throughput and latency of one (setting, concurrency) point."""

    setting: str
    concurrency: int
    requests: int
    errors: int
    duration_s: float
    throughput_rps: float
    images_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cached_fraction: float
    error_samples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for the JSON report."""
        return asdict(self)


def multipart_body(files: Sequence[bytes], field_name: str = "file") -> Body:
    """Encode files as one multipart/form-data body with its Content-Type header."""
    boundary = "benchmarkboundary7d3f"
    parts = [
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; '
            f'filename="image{i}.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        ).encode()
        + data
        + b"\r\n"
        for i, data in enumerate(files)
    ]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


async def _drive(
    url: str,
    bodies: Sequence[Body],
    concurrency: int,
    duration_s: float,
    start_index: int,
    headers: dict[str, str],
) -> tuple[list[float], int, int, list[str], int, float]:
    latencies: list[float] = []
    cached = 0
    errors = 0
    samples: list[str] = []
    counter = start_index
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = time.perf_counter() + duration_s

        async def worker() -> None:
            nonlocal counter, cached, errors
            while time.perf_counter() < deadline:
                body, body_headers = bodies[counter % len(bodies)]
                counter += 1
                started = time.perf_counter()
                try:
                    async with session.post(
                        url, data=body, headers={**headers, **body_headers}
                    ) as response:
                        payload = await response.read()
                        ok = response.status == 200
                except (aiohttp.ClientError, TimeoutError) as error:
                    ok, payload = False, repr(error).encode()
                latencies.append(time.perf_counter() - started)
                if ok:
                    cached += payload.count(b'"cached":true')
                else:
                    errors += 1
                    if len(samples) < 5:
                        samples.append(payload[:200].decode(errors="replace"))

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return latencies, cached, errors, samples, counter, elapsed


def run_load(
    setting: str,
    url: str,
    bodies: Sequence[Body],
    concurrency: int,
    duration_s: float,
    images_per_request: int = 1,
    start_index: int = 0,
    headers: dict[str, str] | None = None,
) -> tuple[LoadResult, int]:
    """Drive url for duration_s with concurrency workers; return the result and next index."""
    latencies, cached, errors, samples, next_index, elapsed = asyncio.run(
        _drive(url, bodies, concurrency, duration_s, start_index, headers or {})
    )
    done = len(latencies)
    millis = np.array(latencies) * 1000.0 if latencies else np.zeros(1)
    result = LoadResult(
        setting=setting,
        concurrency=concurrency,
        requests=done,
        errors=errors,
        duration_s=round(elapsed, 3),
        throughput_rps=round(done / elapsed, 2),
        images_per_s=round(done * images_per_request / elapsed, 2),
        p50_ms=round(float(np.percentile(millis, 50)), 2),
        p95_ms=round(float(np.percentile(millis, 95)), 2),
        p99_ms=round(float(np.percentile(millis, 99)), 2),
        cached_fraction=round(cached / max(done * images_per_request, 1), 4),
        error_samples=samples,
    )
    return result, next_index
