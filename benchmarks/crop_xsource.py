"""Crop mode against resize mode on full-resolution images: the xsource set, evaluation only.

Evaluates model directories on an out-of-source REAL/FAKE folder (../shared/data/xsource by
default), each through its own preprocessing (config.yaml: resize, or crop with N crops),
and writes JSON. xsource is too small and size-confounded to train on (every FAKE is 559 px,
the REAL photos 723-4024 px); its figures describe the mechanism, not a detector.

    python benchmarks/crop_xsource.py --model models/a --model models/b
    python benchmarks/crop_xsource.py --train-demo /tmp/crop_demo   # train both, then evaluate

--train-demo first trains resnet18 twice on 256 px demo images (data/demo.py) on the CPU,
once in resize mode (each image resized to 32 px) and once in crop mode (32 px crops of the
native 256 px image: experiment=demo_crop), and also scores both on their own demo test
split, the in-distribution figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aidetector.cli import cmd_demo_data, cmd_prepare
from aidetector.config.loading import compose_config
from aidetector.config.schema import RunConfig
from aidetector.data.evalset import ingest_eval_folder
from aidetector.data.prepared import load_split, read_manifest, read_split_meta
from aidetector.evaluation.calibration import expected_calibration_error
from aidetector.evaluation.metrics import classification_metrics
from aidetector.inference import predict_outputs
from aidetector.labels import ClassOrder
from aidetector.models.artifact import LoadedModel, load_model_dir
from aidetector.training.outputs import write_training_outputs
from aidetector.training.train import train

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "crop_xsource.json"
XSOURCE = PROJECT_ROOT.parent / "shared" / "data" / "xsource"
MODES = {
    "resize": ["data.image_size=32"],
    "crop": ["experiment=demo_crop"],
}


def score(
    loaded: LoadedModel,
    images: np.ndarray,
    labels: np.ndarray,
    classes: tuple[str, ...],
    sizes: tuple[np.ndarray, np.ndarray],
) -> dict[str, float]:
    """Return accuracy, F1, ROC-AUC, ECE, mean P(FAKE) per class and the flagged share."""
    outputs = predict_outputs(
        loaded.network,
        loaded.preprocessing,
        images,
        batch_size=64,
        temperature=loaded.temperature,
        domain=loaded.domain,
        fake_index=loaded.class_order.fake_index,
    )
    order = ClassOrder.from_names(classes)
    metrics = classification_metrics(labels, outputs.prob_fake, order)
    flagged = [
        loaded.domain is not None
        and not loaded.domain.check(float(distance), int(width), int(height)).in_domain
        for distance, width, height in zip(outputs.distance, *sizes, strict=True)
    ]
    return {
        "n": len(labels),
        "accuracy": round(metrics["accuracy"], 4),
        "f1_fake": round(metrics["f1_fake"], 4),
        "roc_auc": round(metrics["roc_auc"], 4),
        "ece": round(
            expected_calibration_error(labels, outputs.prob_fake, fake_index=order.fake_index), 4
        ),
        **{
            f"mean_prob_fake_{name.lower()}": round(float(outputs.prob_fake[labels == i].mean()), 4)
            for i, name in enumerate(classes)
        },
        "flagged_out_of_domain": round(float(np.mean(flagged)), 4),
    }


def evaluate_on_folder(loaded: LoadedModel, root: Path) -> dict[str, Any]:
    """Ingest root through the model's own preprocessing and score the model on it."""
    preprocessing = loaded.preprocessing
    started = time.perf_counter()
    eval_set = ingest_eval_folder(
        "xsource",
        root,
        preprocessing.array_size,
        loaded.class_order.names,
        set(),
        mode=preprocessing.mode,
    )
    data = eval_set.data
    sizes = (np.array(data.widths), np.array(data.heights))
    result = score(loaded, data.images, data.labels, eval_set.classes, sizes)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def laplacian_probe_accuracy(inputs: np.ndarray, is_fake: np.ndarray) -> float:
    """Return the best single-threshold accuracy of the inputs' Laplacian variance.

    A model-free measure of whether the demo's trace (weaker high frequencies in FAKE
    images, data/demo.py) is still in what the network sees: near 0.5 once it is gone.
    """
    grey = inputs.astype(np.float64).mean(axis=-1)
    laplacian = (
        4 * grey[:, 1:-1, 1:-1]
        - grey[:, :-2, 1:-1]
        - grey[:, 2:, 1:-1]
        - grey[:, 1:-1, :-2]
        - grey[:, 1:-1, 2:]
    )
    variance = laplacian.var(axis=(1, 2))
    return max(
        max(float(np.mean((variance >= t) == is_fake)), float(np.mean((variance < t) == is_fake)))
        for t in np.unique(variance)
    )


def evaluate_on_prepared_test(loaded: LoadedModel, prepared: Path) -> dict[str, Any]:
    """Score the model on the test split of its own prepared data (averaging crops too)."""
    images, labels = load_split(prepared, "test")
    meta = read_split_meta(prepared, "test")
    classes = tuple(read_manifest(prepared)["classes"])
    result = score(loaded, images, labels, classes, (meta.widths, meta.heights))
    centre = np.stack([loaded.preprocessing.centre_input(image) for image in images])
    is_fake = labels == ClassOrder.from_names(classes).fake_index
    result["laplacian_probe_accuracy"] = round(laplacian_probe_accuracy(centre, is_fake), 4)
    return result


def demo_config(workdir: Path, mode: str, args: argparse.Namespace) -> RunConfig:
    """The demo config of one mode: 256 px images, resnet18, a few CPU epochs, under workdir."""
    root = workdir / mode
    previous = Path.cwd()
    os.chdir(PROJECT_ROOT)
    try:
        return compose_config(
            [
                *MODES[mode],
                "model=resnet18",
                "demo.image_size=256",
                f"demo.root={workdir}/raw",
                f"demo.n_per_class={args.n_per_class}",
                f"paths.prepared={root}/prepared",
                f"paths.models={root}/models",
                f"paths.checkpoints={root}/checkpoints",
                f"paths.train_reports={root}/reports/train",
                f"paths.eval_reports={root}/reports/eval",
                f"mlflow.tracking_uri=sqlite:///{root}/mlflow.db",
                f"mlflow.artifact_root={root}/mlartifacts",
                f"trainer.max_epochs={args.epochs}",
                "trainer.enable_progress_bar=false",
                "callbacks.early_stopping_patience=100",
            ]
        )
    finally:
        os.chdir(previous)


def train_demo_models(workdir: Path, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Train resnet18 in both modes on 256 px demo images; return what each run gave."""
    runs: dict[str, dict[str, Any]] = {}
    for mode in args.modes.split(","):
        cfg = demo_config(workdir, mode, args)
        started = time.perf_counter()
        if not (workdir / "raw").is_dir():
            cmd_demo_data(cfg, argparse.Namespace())  # the same images for both modes
        cmd_prepare(cfg, argparse.Namespace())
        result = train(cfg, "resnet18")
        model_dir = write_training_outputs(result, cfg)
        runs[mode] = {
            "model_dir": str(model_dir),
            "prepared": str(cfg.paths.prepared),
            "train_seconds": round(time.perf_counter() - started, 1),
            "epochs": args.epochs,
        }
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", action="append", default=[], help="a model directory")
    parser.add_argument("--train-demo", type=Path, help="train both demo models here first")
    parser.add_argument("--set", type=Path, default=XSOURCE, help="REAL/FAKE folder")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-per-class", type=int, default=800)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--modes", default="resize,crop", help="with --train-demo: which")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown:
        parser.error(f"--modes takes {', '.join(MODES)}, not {', '.join(sorted(unknown))}")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    runs: dict[str, dict[str, Any]] = {}
    if args.train_demo:
        runs = train_demo_models(args.train_demo, args)
    for path in args.model:
        runs[Path(path).name] = {"model_dir": path}
    if not runs:
        parser.error("give --model DIR (repeatable) or --train-demo WORKDIR")
    models: dict[str, dict[str, Any]] = {}
    for name, run in runs.items():
        loaded = load_model_dir(Path(run["model_dir"]), dtype=torch.float32)
        entry: dict[str, Any] = {
            **run,
            "preprocessing": loaded.preprocessing.to_dict(),
            "temperature": round(loaded.temperature, 4),
            "xsource": evaluate_on_folder(loaded, args.set),
        }
        if "prepared" in run:
            entry["demo_test"] = evaluate_on_prepared_test(loaded, Path(run["prepared"]))
        models[name] = entry
        print(json.dumps({name: {k: entry[k] for k in ("xsource", "demo_test") if k in entry}}))
    report = {
        "benchmark": "crop_xsource",
        "set": str(args.set),
        "note": (
            "xsource: 50 REAL photos (723-4024 px) and 50 FAKE images (all 559 px); too small "
            "and size-confounded to train on or to support accuracy claims. Models trained on "
            "synthetic demo images are not expected to generalise to it."
        ),
        "threads": args.threads,
        "cpu": platform.machine(),
        "torch": torch.__version__,
        "total_seconds": round(time.perf_counter() - started, 1),
        "models": models,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
