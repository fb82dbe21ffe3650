"""Evaluate an exported model on the evaluation suite: metrics, calibration, FP16, plots, and
the most confident mistakes with their heatmaps."""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from aidetector.config.schema import EvaluateConfig, RunConfig
from aidetector.config.tracking import tracking_uri
from aidetector.evaluation.metrics import classification_metrics, roc_points
from aidetector.evaluation.mistakes import MistakeGallery, most_confident_mistakes
from aidetector.evaluation.plots import (
    confusion_rows,
    save_confusion_png,
    save_history_png,
    save_reliability_png,
    save_roc_png,
    write_rows_csv,
)
from aidetector.evaluation.scoring import SuiteScores, score_model
from aidetector.evaluation.suite import TEST_SET, Suite, load_suite_from_config, write_json
from aidetector.labels import ClassOrder
from aidetector.models.artifact import LoadedModel, load_model_dir
from aidetector.models.drift import DRIFT_FILE, DriftReference, fit_drift_reference
from aidetector.models.factory import count_parameters

log = logging.getLogger(__name__)
MLFLOW_UNSAFE = re.compile(r"[^\w\-. :/]")
# MLflow's limit on metrics per log_batch request.
MLFLOW_BATCH = 1000


@dataclass
class EvaluationResult:
    """Flat test metrics, the suite table, and the per-sample outputs the plots are drawn from."""

    metrics: dict[str, float]
    labels: np.ndarray
    prob_fake: np.ndarray
    class_order: ClassOrder
    suite: SuiteScores | None = None
    mistakes: MistakeGallery | None = None
    # The test split's input features and P(FAKE): what serving compares its traffic with.
    drift: DriftReference | None = None

    def predicted_labels(self, threshold: float = 0.5) -> np.ndarray:
        """Return the predicted label index per sample, in the data's label order."""
        order = self.class_order
        return np.where(self.prob_fake >= threshold, order.fake_index, order.real_index)


def evaluate_model(loaded: LoadedModel, suite: Suite, cfg: EvaluateConfig) -> EvaluationResult:
    """Return the test split's flat metrics and the model's whole suite table."""
    scores = score_model(
        loaded,
        suite,
        batch_size=cfg.batch_size,
        latency_samples=cfg.latency_samples,
        latency_warmup=cfg.latency_warmup,
    )
    labels, prob_fake = scores.test_labels, scores.test_prob_fake
    order = ClassOrder.from_names(suite.classes)
    metrics = classification_metrics(labels, prob_fake, order)
    test_row = scores.rows[TEST_SET]
    # The test row's ECE, Brier and UNCERTAIN share, and the 95% intervals of its figures.
    interval_keys = [key for key in test_row if key.endswith(("_low", "_high"))]
    metrics.update({key: test_row[key] for key in ("ece", "brier", "flagged", *interval_keys)})
    # Model-level figures come from the same scoring run: nothing is predicted twice.
    model_keys = (
        "ece_uncalibrated",
        "temperature",
        "fp16_accuracy",
        "fp16_f1_fake",
        "fp16_accuracy_delta",
        "fp16_accuracy_drop",
        "fp16_accuracy_drop_low",
        "fp16_accuracy_drop_high",
        "latency_ms_mean",
        "latency_ms_p95",
    )
    metrics.update({key: scores.model[key] for key in model_keys})
    metrics["num_params"] = count_parameters(loaded.network)
    mistakes = most_confident_mistakes(loaded, suite.test.images, labels, prob_fake, order)
    test = suite.test
    drift = fit_drift_reference(
        test.images, np.stack([test.meta.widths, test.meta.heights], axis=1), prob_fake
    )
    return EvaluationResult(
        metrics=metrics,
        labels=labels,
        prob_fake=prob_fake,
        class_order=order,
        suite=scores,
        mistakes=mistakes,
        drift=drift,
    )


def evaluate_from_config(cfg: RunConfig, model_name: str) -> EvaluationResult:
    """Load models/<name> and the evaluation suite, and evaluate."""
    loaded = load_model_dir(cfg.paths.models / model_name, dtype=torch.float32)
    return evaluate_model(loaded, load_suite_from_config(cfg), cfg.evaluate)


def suite_metrics_file(scores: SuiteScores) -> dict[str, object]:
    """Return suite.json's content: the suite hash and one flat mapping per row."""
    return {"suite_hash": scores.suite_hash, **scores.rows}


def write_evaluation_outputs(result: EvaluationResult, cfg: RunConfig, model_name: str) -> Path:
    """Write metrics, the suite table, plot data and PNGs under reports/eval/<name>; log them."""
    out_dir = cfg.paths.eval_reports / model_name
    png_dir = out_dir / "png"
    png_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = out_dir / "metrics.json"
    metrics_path.write_text(json.dumps(result.metrics, indent=2, sort_keys=True))
    predicted, order = result.predicted_labels(), result.class_order
    write_rows_csv(confusion_rows(result.labels, predicted, order), out_dir / "confusion.csv")
    points = roc_points(result.labels, result.prob_fake, order)
    write_rows_csv(points, out_dir / "roc.csv")
    title = f"{model_name} (test)"
    save_confusion_png(result.labels, predicted, order, png_dir / "confusion_matrix.png", title)
    save_roc_png(points, result.metrics["roc_auc"], png_dir / "roc.png", title)
    if result.suite is not None:
        write_json(out_dir / "suite.json", suite_metrics_file(result.suite))
        write_rows_csv(result.suite.reliability, out_dir / "reliability.csv")
        save_reliability_png(
            result.suite.reliability,
            result.metrics.get("ece", float("nan")),
            png_dir / "reliability.png",
            title,
        )
    if result.drift is not None:
        # Beside the metrics, not in models/<name> (the train stage's output): the register
        # stage puts it into every registered version's directory (attach_drift_reference).
        result.drift.write(out_dir / DRIFT_FILE)
    if result.mistakes is not None:
        result.mistakes.write(png_dir)  # under png/: a DVC output of the stage, like the plots
    history = cfg.paths.train_reports / model_name / "history.csv"
    if history.is_file():
        save_history_png(history, png_dir / "training_curves.png", model_name)
    log_to_training_run(cfg, model_name, result, out_dir)
    return out_dir


def log_to_training_run(
    cfg: RunConfig, model_name: str, result: EvaluationResult, out_dir: Path
) -> None:
    """Add test metrics, the suite table and plots to the model's MLflow training run."""
    summary_path = cfg.paths.models / model_name / "train_summary.json"
    run_id = (
        json.loads(summary_path.read_text()).get("mlflow_run_id")
        if summary_path.is_file()
        else None
    )
    if not run_id:
        return
    client = MlflowClient(tracking_uri(cfg.mlflow))
    now = int(time.time() * 1000)
    metrics = [Metric(f"eval/{key}", float(value), now, 0) for key, value in result.metrics.items()]
    try:
        if result.suite is not None:
            # Suite metrics are only comparable under one hash: the tag names it.
            client.set_tag(run_id, "suite_hash", result.suite.suite_hash)
            for row, values in result.suite.rows.items():
                # Source folders may hold any character; MLflow names may not.
                name = MLFLOW_UNSAFE.sub("_", row)
                metrics += [
                    Metric(f"suite/{name}/{key}", float(value), now, 0)
                    for key, value in values.items()
                ]
        # One request per MLFLOW_BATCH metrics: every row has its intervals, ~20 figures each.
        for start in range(0, len(metrics), MLFLOW_BATCH):
            client.log_batch(run_id, metrics=metrics[start : start + MLFLOW_BATCH])
        client.log_artifacts(run_id, str(out_dir), artifact_path="evaluation")
    except MlflowException as error:
        log.warning("could not log evaluation to MLflow run %s: %s", run_id, error)
