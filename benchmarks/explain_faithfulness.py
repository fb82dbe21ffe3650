"""Faithfulness of the Grad-CAM explanations: the deletion test, map order against random.

For each family (resnet18 and vit_tiny at 32 px, the project's configs) a model is trained
on the known-answer task of aidetector.faithfulness (a bright square on dark noise is FAKE)
and scored on held-out images: the mean area under P(predicted class) as pixels are
removed, most attributed first, against the same removal in random order. Lower is faster;
a map no better than random is a defect. `--model-dir` with `--images` (a folder of images)
scores a trained model directory too. It also times one explanation (map and PNG overlay),
in process. Writes JSON.

    python benchmarks/explain_faithfulness.py [--images-per-family 64] [--threads 1]
    python benchmarks/explain_faithfulness.py --model-dir models/resnet18 --images DIR
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import captum
import numpy as np
import torch

from aidetector.explain import Explainer, render_overlay
from aidetector.faithfulness import (
    DEFAULT_STEPS,
    bright_square_images,
    deletion_scores,
    fit_reference_model,
)
from aidetector.inference import model_prob_fake
from aidetector.models.artifact import LoadedModel, load_model_dir

RESULTS = Path(__file__).parent / "results" / "explain_faithfulness.json"
FAMILIES: dict[str, dict[str, Any]] = {
    "cnn": {"name": "resnet18", "family": "cnn", "arch": "resnet18", "img_size": 32},
    "vit": {
        "name": "vit_tiny",
        "family": "vit",
        "arch": "vit_tiny_patch16_224",
        "img_size": 32,
        "patch_size": 4,
    },
}
TRAIN_STEPS = 60


def explain_ms(loaded: LoadedModel, images: np.ndarray, repeats: int = 10) -> float:
    """Median milliseconds for one explanation and its overlay, after one warm-up."""
    explainer = Explainer(loaded)
    render_overlay(images[0], explainer.explain(images[0]))
    times = []
    for image in images[:repeats]:
        start = time.perf_counter()
        render_overlay(image, explainer.explain(image))
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times))


def heldout_accuracy(loaded: LoadedModel, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy on the held-out images (labels: 1 = FAKE, the reference models' order)."""
    prob_fake = model_prob_fake(loaded, images)
    return float(((prob_fake >= 0.5) == labels).mean())


def score(loaded: LoadedModel, images: np.ndarray, steps: int) -> dict[str, Any]:
    """Deletion scores, the explained layer and the latency for one model."""
    scores = deletion_scores(loaded, Explainer(loaded), list(images), steps=steps)
    return {
        **scores.to_dict(),
        "explain_layer": loaded.explain_layer,
        "explain_ms_median": round(explain_ms(loaded, images), 2),
    }


def folder_images(folder: Path, loaded: LoadedModel, count: int) -> np.ndarray:
    """Up to count images under folder (sorted, recursive), as the model's input arrays."""
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    return np.stack([loaded.preprocessing.bytes_to_array(p.read_bytes()) for p in paths[:count]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-per-family", type=int, default=64)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="deletion steps")
    parser.add_argument("--threads", type=int, default=1, help="serve.cpu_threads")
    parser.add_argument("--model-dir", type=Path, help="also score this model directory")
    parser.add_argument("--images", type=Path, help="image folder for --model-dir")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if (args.model_dir is None) != (args.images is None):
        parser.error("--model-dir and --images go together")

    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for family, spec in FAMILIES.items():
            started = time.perf_counter()
            loaded = fit_reference_model(spec, Path(scratch) / family, steps=TRAIN_STEPS)
            held_out, labels = bright_square_images(args.images_per_family, seed=1000)
            results[family] = {
                "model": spec,
                "train_steps": TRAIN_STEPS,
                "heldout_accuracy": heldout_accuracy(loaded, held_out, labels),
                **score(loaded, held_out, args.steps),
                "seconds": round(time.perf_counter() - started, 1),
            }
            print(json.dumps({family: results[family]}), flush=True)
    if args.model_dir is not None:
        loaded = load_model_dir(args.model_dir)
        images = folder_images(args.images, loaded, args.images_per_family)
        results["model_dir"] = {
            "path": str(args.model_dir),
            "images": str(args.images),
            **score(loaded, images, args.steps),
        }
    result = {
        "what": "deletion test: mean area under P(predicted class) while removing pixels "
        "(set to the image median), Grad-CAM order vs random order; lower is faster",
        "task": "bright square on dark noise = FAKE, plain dark noise = REAL (32 px)",
        "results": results,
        "environment": {
            "cpus": len(os.sched_getaffinity(0)),
            "threads": args.threads,
            "machine": platform.machine(),
            "torch": torch.__version__,
            "captum": captum.__version__,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
