"""Bulk scoring throughput: the local engine against its forward-only ceiling and the service.

On the shared CIFAKE sample (../shared/data/cifake/train/{REAL,FAKE}), the same model and
batch size (32) three ways, images per second:
  local engine    `aidetector score`'s engine: listing, reading, hashing and decoding in
                  DataLoader workers, serving's engine in its inference streams, rows
                  appended to Parquet
  forward only    the same InferenceEngine on images decoded beforehand, in the best of
                  every layout of streams x intra-op threads that fits the cores: the ceiling
  service         /predict_batch of `bentoml serve` (32 images a request, --concurrency
                  clients), with the serve config's settings, cache misses only
The forward only and the local engine alternate for --rounds rounds, so that both see the
same machine, and each figure is the median of its rounds. Targets: local >= 0.8 x forward
only, and local > service. Writes JSON.

    python benchmarks/bulk_score.py [--images 6000] [--rounds 3] [--workers 1] [--model-dir DIR]
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

from aidetector.batch.decode import InputLimits
from aidetector.batch.local import StreamLayout, score_local
from aidetector.batch.model import local_model, registered_model
from aidetector.batch.options import ScoreOptions
from aidetector.config.loading import compose_config
from aidetector.config.schema import RunConfig
from aidetector.errors import AidetectorError
from aidetector.labels import FAKE, REAL, ClassOrder
from aidetector.models.artifact import save_model_dir
from aidetector.models.factory import build_network
from aidetector.preprocessing import Preprocessing
from aidetector.registry import CHAMPION
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


def model_dir_or_fallback(given: Path | None, cfg: RunConfig, work: Path) -> tuple[Path, str]:
    """--model-dir, else the registry's champion (what `aidetector score` scores), else the
    trained resnet18 of `make demo`, else a random one at 32 px."""
    if given is not None:
        return given, str(given)
    try:
        champion = registered_model(cfg, work / "champion", alias=CHAMPION)
        return champion.model_dir, f"{champion.readable_name} (champion)"
    except AidetectorError as error:
        print(f"no champion to score with ({error}); falling back", flush=True)
    demo = ROOT / "models" / "resnet18"
    if (demo / "config.yaml").is_file():
        return demo, str(demo)
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
    }


def layouts(cores: int) -> list[StreamLayout]:
    """Every (streams, threads per stream) whose threads fit the cores."""
    return [
        StreamLayout(streams, threads)
        for streams in range(1, cores + 1)
        for threads in range(1, cores // streams + 1)
    ]


def forward_only(arrays: np.ndarray, first: np.ndarray, engine: InferenceEngine) -> dict[str, Any]:
    """The best layout of streams x threads: the ceiling is the forward's, however it is run.

    Each stream takes whole batches in turn, as the local engine's do.
    """
    batches = [arrays[start : start + BATCH] for start in range(0, len(arrays), BATCH)]
    rates = {}
    for layout in layouts(os.cpu_count() or 1):
        torch.set_num_threads(layout.threads)
        engine.predict(first)
        started = time.perf_counter()
        with ThreadPoolExecutor(layout.streams) as streams:
            list(streams.map(engine.predict, batches))
        rates[f"{layout.streams}x{layout.threads}"] = len(arrays) / (time.perf_counter() - started)
    best = max(rates, key=lambda name: rates[name])
    return {
        "images_per_s": round(rates[best], 1),
        "streams_x_threads": best,
        "images_per_s_by_layout": {name: round(rate, 1) for name, rate in rates.items()},
    }


def decoded(paths: list[str], engine: InferenceEngine) -> np.ndarray:
    """The model inputs of paths, decoded by serving's entry point."""
    decode = engine.preprocessing.bytes_to_array
    return np.stack([decode(Path(p).read_bytes()) for p in paths])


def median_round(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate, and every round's rate."""
    ranked = sorted(runs, key=lambda run: run["images_per_s"])
    return {
        **ranked[(len(ranked) - 1) // 2],
        "images_per_s_by_round": [run["images_per_s"] for run in runs],
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
    parser.add_argument("--images", type=int, default=6000, help="sample size (half per class)")
    parser.add_argument("--rounds", type=int, default=3, help="forward-only and local runs")
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
        model_dir, model = model_dir_or_fallback(args.model_dir, cfg, work)
        # The warm-up batch is never measured, so that no image is scored twice.
        paths, warm_up = sample(args.images)
        print(f"{len(paths)} CIFAKE images, model {model}", flush=True)
        engine = InferenceEngine(model_dir, device="cpu")
        arrays, first = decoded(paths, engine), decoded(warm_up, engine)
        ceilings, locals_ = [], []
        for round_ in range(1, args.rounds + 1):
            ceilings.append(forward_only(arrays, first, engine))
            out = work / f"results-{round_}.parquet"
            locals_.append(local_engine(paths, model_dir, cfg, args.workers, out))
            print(f"  round {round_}: forward only {ceilings[-1]['images_per_s']:8.1f} img/s"
                  f" ({ceilings[-1]['streams_x_threads']}), local engine "
                  f"{locals_[-1]['images_per_s']:8.1f} img/s", flush=True)  # fmt: skip
        ceiling, local = median_round(ceilings), median_round(locals_)
        served = service(paths, warm_up, model_dir, work, args.concurrency)
        print(f"  /predict_batch {served['images_per_s']:8.1f} img/s", flush=True)
    over_ceiling = local["images_per_s"] / ceiling["images_per_s"]
    over_service = local["images_per_s"] / served["images_per_s"]
    result = {
        "benchmark": "bulk_score",
        "note": "medians of alternating rounds on a 2-core VM whose speed moves between runs",
        "images": len(paths),
        "rounds": args.rounds,
        "data": "CIFAKE train sample (32 px JPEG), half REAL, half FAKE",
        "model": model,
        "batch_size": BATCH,
        "device": "cpu",
        "local_engine_layout": vars(StreamLayout.for_device("cpu")),
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
