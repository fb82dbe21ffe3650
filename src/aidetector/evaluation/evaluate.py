"""Evaluate an exported model on the test split: metrics, FP16 parity, latency, plots."""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig
from torch import nn

from aidetector.data.prepared import load_split
from aidetector.evaluation.latency import measure_batch1_latency
from aidetector.evaluation.metrics import classification_metrics, roc_points
from aidetector.evaluation.plots import (
    confusion_rows,
    save_confusion_png,
    save_history_png,
    save_roc_png,
    write_rows_csv,
)
from aidetector.evaluation.predict import predict_prob_fake
from aidetector.models.artifact import LoadedModel, load_model_dir
from aidetector.models.factory import count_parameters
from aidetector.preprocessing import Preprocessing
from aidetector.tracking import tracking_uri

log = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """Flat metrics plus the per-sample outputs the plots are drawn from."""

    metrics: dict[str, float]
    labels: np.ndarray
    prob_fake: np.ndarray


def fp16_copy(network: nn.Module) -> nn.Module:
    """Return a half-precision copy of network (weights rounded to FP16)."""
    return copy.deepcopy(network).half().eval()


def predict_fp16(
    network: nn.Module, preprocessing: Preprocessing, images: np.ndarray, batch_size: int
) -> np.ndarray:
    """Return P(FAKE) from an FP16 copy; where the CPU lacks an FP16 kernel, autocast upcasts it."""
    half = fp16_copy(network)
    try:
        return predict_prob_fake(half, preprocessing, images, batch_size)
    except RuntimeError as error:  # an op without a Half kernel on this device
        log.warning("pure FP16 inference failed (%s); using autocast with FP16 weights", error)
        upcast = half.float()
        device = next(upcast.parameters()).device.type
        with torch.autocast(device_type=device, dtype=torch.float16):
            return predict_prob_fake(upcast, preprocessing, images, batch_size)


def evaluate_model(
    loaded: LoadedModel, images: np.ndarray, labels: np.ndarray, cfg: DictConfig
) -> EvaluationResult:
    """Return test metrics of a loaded FP32 model and of its FP16 copy."""
    batch_size = int(cfg.batch_size)
    network, preprocessing = loaded.network, loaded.preprocessing
    prob_fake = predict_prob_fake(network, preprocessing, images, batch_size)
    metrics = classification_metrics(labels, prob_fake)
    fp16_metrics = classification_metrics(
        labels, predict_fp16(network, preprocessing, images, batch_size)
    )
    metrics["fp16_accuracy"] = fp16_metrics["accuracy"]
    metrics["fp16_f1_fake"] = fp16_metrics["f1_fake"]
    metrics["fp16_accuracy_delta"] = fp16_metrics["accuracy"] - metrics["accuracy"]
    metrics.update(
        measure_batch1_latency(
            network, preprocessing, images, int(cfg.latency_samples), int(cfg.latency_warmup)
        )
    )
    metrics["num_params"] = count_parameters(network)
    return EvaluationResult(metrics=metrics, labels=labels, prob_fake=prob_fake)


def evaluate_from_config(cfg: DictConfig, model_name: str) -> EvaluationResult:
    """Load models/<name> and the prepared test split, and evaluate."""
    loaded = load_model_dir(Path(cfg.paths.models) / model_name, dtype=torch.float32)
    images, labels = load_split(Path(cfg.paths.prepared), "test")
    return evaluate_model(loaded, images, labels, cfg.evaluate)


def write_evaluation_outputs(result: EvaluationResult, cfg: DictConfig, model_name: str) -> Path:
    """Write metrics.json, plot data and PNGs under reports/eval/<name>, and log them to MLflow."""
    out_dir = Path(cfg.paths.eval_reports) / model_name
    png_dir = out_dir / "png"
    png_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / "metrics.json"
    metrics_path.write_text(json.dumps(result.metrics, indent=2, sort_keys=True))
    predicted = (result.prob_fake >= 0.5).astype(int)
    write_rows_csv(confusion_rows(result.labels, predicted), out_dir / "confusion.csv")
    points = roc_points(result.labels, result.prob_fake)
    write_rows_csv(points, out_dir / "roc.csv")
    title = f"{model_name} (test)"
    save_confusion_png(result.labels, predicted, png_dir / "confusion_matrix.png", title)
    save_roc_png(points, result.metrics["roc_auc"], png_dir / "roc.png", title)
    history = Path(cfg.paths.train_reports) / model_name / "history.csv"
    if history.is_file():
        save_history_png(history, png_dir / "training_curves.png", model_name)
    log_to_training_run(cfg, model_name, result.metrics, out_dir)
    return out_dir


def log_to_training_run(
    cfg: DictConfig, model_name: str, metrics: dict[str, float], out_dir: Path
) -> None:
    """Add test metrics and plots to the model's MLflow training run, if that run still exists."""
    summary_path = Path(cfg.paths.models) / model_name / "train_summary.json"
    run_id = (
        json.loads(summary_path.read_text()).get("mlflow_run_id")
        if summary_path.is_file()
        else None
    )
    if not run_id:
        return
    client = MlflowClient(tracking_uri(cfg))
    try:
        for key, value in metrics.items():
            client.log_metric(run_id, f"eval/{key}", float(value))
        client.log_artifacts(run_id, str(out_dir), artifact_path="evaluation")
    except MlflowException as error:
        log.warning("could not log evaluation to MLflow run %s: %s", run_id, error)
