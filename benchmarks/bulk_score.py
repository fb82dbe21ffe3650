"""Bulk scoring throughput: the local engine against its forward-only ceiling and the service.

On the shared CIFAKE sample (../shared/data/cifake/train/{REAL,FAKE}), the same model and
batch size (32) three ways, images per second:
  local engine    `aidetector score`'s engine: listing, reading, hashing and decoding in
                  DataLoader workers, serving's engine, rows appended to Parquet
  forward only    the same InferenceEngine on images decoded beforehand: the ceiling
  service         /predict_batch of `bentoml serve` (32 images a request, --concurrency
                  clients), with the serve config's settings, cache misses only
Targets: local >= 0.8 x forward only, and local > service. Writes JSON.

    python benchmarks/bulk_score.py [--images 2000] [--workers 1] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import requests
import torch

from aidetector.classes import FAKE, REAL, ClassOrder
from aidetector.config import compose_config
from aidetector.config_schema import RunConfig
from aidetector.models.artifact import save_model_dir
from aidetector.models.factory import build_network
from aidetector.preprocessing import Preprocessing
from aidetector.scoring.decode import InputLimits
from aidetector.scoring.local import inference_threads, score_local
from aidetector.scoring.model import local_model
from aidetector.scoring.options import ScoreOptions
from aidetector.serving.model_runtime import InferenceEngine

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import multipart_body
from stack import ROOT, Stack

RESULTS = Path(__file__).parent / "results" / "bulk_score.json"
CIFAKE = ROOT.parent / "shared" / "data" / "cifake" / "train"
BATCH = 32
TARGET_OVER_CEILING = 0.8


def sample(count: int) -> tuple[list[str], list[str]]:
    """The first count/2 files of each CIFAKE class, and a batch of others to warm up on."""
    per_class = count // 2
    listed = {name: sorted(str(p) for p in (CIFAKE / name).iterdir()) for name in (REAL, FAKE)}
    measured = [path for name in (REAL, FAKE) for path in listed[name][:per_class]]
    return measured, listed[REAL][per_class : per_class + BATCH]


def model_dir_or_random(given: Path | None, work: Path) -> tuple[Path, str]:
    """--model-dir, else the trained resnet18 of `make demo`, else a random one at 32 px."""
    for candidate in (given, ROOT / "models" / "resnet18"):
        if candidate is not None and (candidate / "config.yaml").is_file():
            return candidate, str(candidate)
    torch.manual_seed(0)
    spec = {"name": "resnet18", "family": "cnn", "arch": "resnet18", "num_classes": 2,
            "img_size": 32}  # fmt: skip
    out = work / "resnet18_32"
    save_model_dir(build_network(**spec).eval(), spec, Preprocessing(image_size=32), out,
                   ClassOrder((REAL, FAKE)))  # fmt: skip
    return out, "random resnet18 at 32 px (no trained model found)"


def local_engine(
    paths: list[str], model_dir: Path, cfg: RunConfig, workers: int, out: Path
) -> dict[str, Any]:
    """One `aidetector score` run; its rate counts from the first batch (model loaded)."""
    options = ScoreOptions(
        threshold=cfg.serve.threshold,
        limits=InputLimits.from_serve(cfg.serve),
        batch_size=BATCH,
        workers=workers,
        device="cpu",
        progress=False,
    )
    summary = score_local(paths, local_model(model_dir), str(out), options)
    assert summary.scored + summary.errors == len(paths), summary
    return {
        "images_per_s": round(summary.images_per_second, 1),
        "scoring_seconds": round(summary.scoring_seconds, 2),
        "run_seconds": round(summary.seconds, 2),
        "errors": summary.errors,
        "decode_workers": workers,
        "inference_threads": inference_threads(options),
    }


def forward_only(paths: list[str], warm_up: list[str], model_dir: Path) -> dict[str, Any]:
    """The best of every thread count: the ceiling is the forward's, however it is tuned."""
    engine = InferenceEngine(model_dir, device="cpu")
    decode = engine.preprocessing.bytes_to_array
    arrays = np.stack([decode(Path(p).read_bytes()) for p in paths])
    first = np.stack([decode(Path(p).read_bytes()) for p in warm_up])
    rates = {}
    for threads in range(1, (os.cpu_count() or 1) + 1):
        torch.set_num_threads(threads)
        engine.predict(first)
        started = time.perf_counter()
        for start in range(0, len(arrays), BATCH):
            engine.predict(arrays[start : start + BATCH])
        rates[threads] = len(arrays) / (time.perf_counter() - started)
    best = max(rates, key=lambda t: rates[t])
    return {
        "images_per_s": round(rates[best], 1),
        "threads": best,
        "images_per_s_by_threads": {str(t): round(r, 1) for t, r in rates.items()},
    }


def service(
    paths: list[str], warm_up: list[str], model_dir: Path, work: Path, concurrency: int
) -> dict[str, Any]:
    """/predict_batch, 32 images a request from `concurrency` clients; no image twice."""
    stack = Stack(work)
    try:
        tag = stack.import_model(model_dir, "bulk1")
        with stack.serving(
            "aidetector.serving.service:AIDetector", ROOT, AIDETECTOR_MODEL_TAG=tag
        ) as url:
            files = [Path(p).read_bytes() for p in paths]
            bodies = [multipart_body(files[i : i + BATCH]) for i in range(0, len(files), BATCH)]
            # One request of other images first, not timed: it pays lazy initialisation.
            first = multipart_body([Path(p).read_bytes() for p in warm_up])
            requests.post(f"{url}/predict_batch", data=first[0], headers=first[1],
                          timeout=120).raise_for_status()  # fmt: skip
            stack.flush_cache()

            def send(body: tuple[bytes, dict[str, str]]) -> int:
                response = requests.post(
                    f"{url}/predict_batch", data=body[0], headers=body[1], timeout=300
                )
                response.raise_for_status()
                return int(response.json()["count"])

            started = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                answered = sum(pool.map(send, bodies))
            seconds = time.perf_counter() - started
    finally:
        stack.close()
    return {
        "images_per_s": round(answered / seconds, 1),
        "seconds": round(seconds, 2),
        "images": answered,
        "clients": concurrency,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="sample size (half per class)")
    parser.add_argument("--workers", type=int, default=1, help="decoding workers (local engine)")
    parser.add_argument("--concurrency", type=int, default=2, help="service clients")
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not (CIFAKE / REAL).is_dir() or not (CIFAKE / FAKE).is_dir():
        print(f"skipped: the shared CIFAKE sample is not at {CIFAKE} (REAL/ and FAKE/)")
        return 0
    os.chdir(ROOT)
    cfg = compose_config(["serve.gpus=0", "serve.device=cpu"])
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bulk-bench-") as folder:
        work = Path(folder)
        model_dir, model = model_dir_or_random(args.model_dir, work)
        # The warm-up batch is never measured, so that no image is scored twice.
        paths, warm_up = sample(args.images)
        print(f"{len(paths)} CIFAKE images, model {model}", flush=True)
        ceiling = forward_only(paths, warm_up, model_dir)
        print(f"  forward only   {ceiling['images_per_s']:8.1f} img/s", flush=True)
        local = local_engine(paths, model_dir, cfg, args.workers, work / "results.parquet")
        print(f"  local engine   {local['images_per_s']:8.1f} img/s", flush=True)
        served = service(paths, warm_up, model_dir, work, args.concurrency)
        print(f"  /predict_batch {served['images_per_s']:8.1f} img/s", flush=True)
    over_ceiling = local["images_per_s"] / ceiling["images_per_s"]
    over_service = local["images_per_s"] / served["images_per_s"]
    result = {
        "benchmark": "bulk_score",
        "note": "one run on a 2-core machine shared with other sessions: figures move with load",
        "images": len(paths),
        "data": "CIFAKE train sample (32 px JPEG), half REAL, half FAKE",
        "model": model,
        "batch_size": BATCH,
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1m": {
            "before": round(load_before[0], 2),
            "after": round(os.getloadavg()[0], 2),
        },
        "service_cpu_threads": cfg.serve.cpu_threads,
        "local_engine": local,
        "forward_only": ceiling,
        "service_predict_batch": served,
        "local_over_forward_only": round(over_ceiling, 3),
        "local_over_service": round(over_service, 2),
        "target_local_over_forward_only": TARGET_OVER_CEILING,
        "targets_met": {
            "local_over_forward_only": over_ceiling >= TARGET_OVER_CEILING,
            "local_beats_service": over_service > 1.0,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
