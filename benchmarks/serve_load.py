"""Serving load test: the BentoML service against its floor, its model and a naive server.

Everything is measured in one run on this machine, the load generator sharing the cores:
  framework floor   empty BentoML endpoints taking the same upload (benchmarks/serve_baselines)
  demo champion     /predict (cache misses), the cache-hit path, /predict_batch (32 images)
  compute-bound     resnet18 at 224 px: /predict, the naive server, the in-process reference
Each at concurrency 1, 8, 32 and 64; targets are checked at 32. Writes JSON.

    python benchmarks/serve_load.py [--duration 6] [--concurrency 1 8 32 64]

--public-batching adds the same service batching through a `bentoml.depends` service
(benchmarks/public_batching.py) instead of BentoML's in-process dispatcher, for both models;
--only NAME... measures only those settings (and starts only their servers), e.g. a short
back-to-back comparison of the two designs:

    python benchmarks/serve_load.py --public-batching --concurrency 8 32 --out /tmp/cmp.json \
        --only demo_predict demo_predict_public r224_predict r224_predict_public
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import torch
from PIL import Image

from aidetector.config.serve import load_serve_settings
from aidetector.labels import FAKE, REAL, ClassOrder
from aidetector.models.artifact import save_model_dir
from aidetector.models.factory import build_network
from aidetector.preprocessing import Preprocessing
from aidetector.serving.model_runtime import InferenceEngine

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import Body, multipart_body, run_load
from stack import ROOT, Stack
from targets import evaluate_targets

RESULTS = Path(__file__).parent / "results" / "serve_load.json"
SPEC = {"name": "resnet18", "family": "cnn", "arch": "resnet18", "num_classes": 2}


def unique_jpegs(count: int, size: int, seed: int) -> list[bytes]:
    """count JPEGs of size x size with distinct random pixels (each misses the cache)."""
    images = []
    for index in range(count):
        pixels = np.random.default_rng((seed, index)).integers(0, 256, (size, size, 3), np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=85)
        images.append(buffer.getvalue())
    if len(set(images)) != count:
        raise RuntimeError("the generated images are not all distinct")
    return images


def demo_model_dir(work: Path) -> tuple[Path, str]:
    """The demo champion: the exported champion, else the trained resnet18, else random."""
    for candidate in (ROOT / "build" / "champion", ROOT / "models" / "resnet18"):
        if (candidate / "config.yaml").is_file():
            return candidate, str(candidate.relative_to(ROOT))
    return make_model(work, 32), "random resnet18 at 32 px (no trained model found)"


def make_model(work: Path, size: int) -> Path:
    torch.manual_seed(0)
    network = build_network(**SPEC, img_size=size).eval()
    out = work / f"resnet18_{size}"
    spec, order = {**SPEC, "img_size": size}, ClassOrder((REAL, FAKE))
    save_model_dir(network, spec, Preprocessing(image_size=size), out, order)
    return out


def reference(model_dir: Path, images: list[bytes], threads: int, seconds: float) -> float:
    """In-process batched forward (batch 32, pre-decoded images, no HTTP): images per second."""
    engine = InferenceEngine(model_dir, cpu_threads=threads)
    torch.set_num_threads(threads)
    batch = np.stack([engine.preprocessing.bytes_to_array(d) for d in images[:32]])
    engine.predict(batch)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        engine.predict(batch)
        done += len(batch)
    return round(done / (time.perf_counter() - started), 2)


@dataclass
class Setting:
    """One thing to load: a URL, its bodies, and whether each point must start cold."""

    name: str
    url: str
    bodies: list[Body]
    images_per_request: int = 1
    flush: bool = False
    server: str = ""  # the server's base URL, filled in once it is up
    index: int = 0
    points: dict[int, list[dict[str, Any]]] = field(default_factory=dict)


def measure(setting: Setting, concurrency: int, seconds: float, stack: Stack) -> dict[str, Any]:
    """One point; cache-miss settings start from an empty cache and never reuse an image."""
    if setting.flush:
        stack.flush_cache()
    cpu_before = stack.cpu_seconds(setting.server)
    result, setting.index = run_load(
        setting.name, setting.url, setting.bodies, concurrency, seconds,
        images_per_request=setting.images_per_request, start_index=setting.index,
    )  # fmt: skip
    # CPU per request barely depends on what else shares the cores; throughput does.
    cpu_ms = (stack.cpu_seconds(setting.server) - cpu_before) * 1000 / max(result.requests, 1)
    print(f"  {setting.name:<22} c={concurrency:<3} {result.throughput_rps:8.1f} req/s "
          f"{result.images_per_s:8.1f} img/s  p50 {result.p50_ms:7.1f}  p95 {result.p95_ms:7.1f}"
          f"  p99 {result.p99_ms:7.1f} ms  errors {result.errors}  cached "
          f"{result.cached_fraction}  server cpu {cpu_ms:.2f} ms/req", flush=True)  # fmt: skip
    return {**result.as_dict(), "server_cpu_ms_per_request": round(cpu_ms, 3)}


def median_point(points: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median throughput (its latencies come with it)."""
    ordered = sorted(points, key=lambda p: p["images_per_s"])
    return {**ordered[len(ordered) // 2], "rounds": [p["images_per_s"] for p in points]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per point")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--public-batching", action="store_true",
        help="also serve both models batching through a bentoml.depends service",
    )  # fmt: skip
    parser.add_argument("--only", nargs="+", metavar="NAME", help="measure only these settings")
    args = parser.parse_args()
    started, load_before = time.time(), os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    stack = Stack(work)
    demo_dir, demo_source = demo_model_dir(work)
    big_dir = make_model(work, 224)
    demo_tag, big_tag = stack.import_model(demo_dir, "demo"), stack.import_model(big_dir, "224")
    size = InferenceEngine(demo_dir).image_size
    demo_images = unique_jpegs(24000, size, seed=1)
    big_images = unique_jpegs(2000, 224, seed=2)
    threads = load_serve_settings(Path(stack.params)).cpu_threads
    service, bench = "aidetector.serving.service:AIDetector", Path(__file__).parent
    redis_url = f"redis://127.0.0.1:{stack.redis_port}/0"
    references: dict[str, list[float]] = {"demo": [], "224": []}
    with contextlib.ExitStack() as running:
        running.callback(stack.close)  # Redis goes last, even on an error
        # Every server runs for the whole measurement; points are interleaved across settings
        # so that other jobs' load on the shared cores hits every setting alike.
        demo_env = {"AIDETECTOR_MODEL_TAG": demo_tag, "REDIS_URL": redis_url}
        big_env = {"AIDETECTOR_MODEL_TAG": big_tag, "REDIS_URL": redis_url}
        public = "public_batching:PublicBatchingDetector"
        servers: dict[str, tuple[str, Path, dict[str, str]]] = {
            "floor": ("serve_baselines:Floor", bench, {}),
            "demo": (service, ROOT, demo_env),
            "big": (service, ROOT, big_env),
            "naive": ("serve_baselines:Naive", bench, {"AIDETECTOR_MODEL_TAG": big_tag}),
            "demo_public": (public, bench, demo_env),
            "big_public": (public, bench, big_env),
        }
        one = [multipart_body([d]) for d in demo_images]
        big_one = [multipart_body([d]) for d in big_images]
        batches = [multipart_body(demo_images[i : i + 32], "files") for i in range(0, 24000, 32)]
        # (server, path, setting): the URL is filled in once the server is up.
        planned = [
            ("floor", "/floor", Setting("floor_route", "", one)),
            ("floor", "/floor_api", Setting("floor_api", "", one)),
            ("demo", "/predict", Setting("demo_predict", "", one, flush=True)),
            ("demo", "/predict", Setting("demo_cache_hit", "", one[:1])),
            ("demo", "/predict_batch",
             Setting("demo_predict_batch32", "", batches, images_per_request=32, flush=True)),
            ("big", "/predict", Setting("r224_predict", "", big_one, flush=True)),
            ("naive", "/predict", Setting("r224_naive", "", big_one)),
        ]  # fmt: skip
        if args.public_batching:
            planned += [
                ("demo_public", "/predict", Setting("demo_predict_public", "", one, flush=True)),
                ("big_public", "/predict", Setting("r224_predict_public", "", big_one, flush=True)),
            ]
        if args.only:
            planned = [p for p in planned if p[2].name in args.only]
        urls: dict[str, str] = {}
        settings = []
        for server, path, setting in planned:
            if server not in urls:
                target, working_dir, env = servers[server]
                urls[server] = running.enter_context(stack.serving(target, working_dir, **env))
            setting.server, setting.url = urls[server], urls[server] + path
            settings.append(setting)
        for setting in settings:  # warm-up: trains BentoML's batcher, fills the hit path
            measure(setting, 8, 2.0, stack)
        for round_index in range(args.rounds):
            print(f"round {round_index + 1}: in-process references", flush=True)
            references["demo"].append(reference(demo_dir, demo_images, threads, 4.0))
            references["224"].append(reference(big_dir, big_images, threads, 4.0))
            print(f"  {references}", flush=True)
            for concurrency in args.concurrency:
                for setting in settings:
                    point = measure(setting, concurrency, args.duration, stack)
                    setting.points.setdefault(concurrency, []).append(point)
    report: dict[str, Any] = {
        "settings": {
            s.name: [median_point(s.points[c]) for c in args.concurrency] for s in settings
        },
        "reference": {
            name: {
                "images_per_s": float(np.median(values)),
                "rounds": values,
                "threads": threads,
                "what": "batched forward (batch 32) on pre-decoded images, no HTTP",
            }
            for name, values in references.items()
        },
    }
    report["reference"]["224_all_cores"] = reference(big_dir, big_images, os.cpu_count() or 1, 4)
    report["environment"] = {
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "bentoml": bentoml.__version__,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "serve_cpu_threads": threads,
        "note": "2 shared cores: the load generator, four servers (one driven at a time) "
        "and other people's jobs compete; each point is the median of the rounds",
        "demo_model": demo_source,
        "demo_image_size": size,
        "duration_s_per_point": args.duration,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "wall_s": round(time.time() - started, 1),
    }
    report["targets"] = evaluate_targets(report) if not args.only else {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["targets"], indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
