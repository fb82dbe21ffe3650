"""Writes a training run's outputs: the model directory, history and summary, also to MLflow."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from mlflow.tracking import MlflowClient

from aidetector.config.schema import RunConfig
from aidetector.config.tracking import tracking_uri
from aidetector.data.prepared import read_manifest
from aidetector.models.artifact import save_model_dir
from aidetector.training.train import TrainResult

SUMMARY_FILE = "train_summary.json"


def write_history_csv(rows: list[dict[str, float]], path: Path) -> None:
    """Write per-epoch metrics as CSV (one column per metric) for `dvc plots`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = sorted({key for row in rows for key in row}, key=lambda k: (k != "epoch", k))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def write_training_outputs(result: TrainResult, cfg: RunConfig) -> Path:
    """Export the best network as safetensors + config.yaml and log it to the MLflow run."""
    model_dir = cfg.paths.models / result.model_name
    data_hash = read_manifest(cfg.paths.prepared)["data_hash"]
    save_model_dir(
        result.network,
        result.spec,
        result.preprocessing,
        model_dir,
        result.class_order,
        precision="fp32",
        extra={
            "data_hash": data_hash,
            "mlflow_run_id": result.run_id,
            **({"distilled_from": result.teacher} if result.teacher else {}),
        },
        temperature=result.calibration.temperature if result.calibration else 1.0,
        domain=result.calibration.domain if result.calibration else None,
    )
    summary = {"model": result.model_name, "mlflow_run_id": result.run_id, **result.metrics}
    (model_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True))
    history_path = cfg.paths.train_reports / result.model_name / "history.csv"
    write_history_csv(result.history, history_path)
    if result.run_id:
        client = MlflowClient(tracking_uri(cfg.mlflow))
        client.log_artifacts(result.run_id, str(model_dir), artifact_path="model")
        client.log_artifact(result.run_id, str(history_path), artifact_path="plots")
        client.set_tag(result.run_id, "data_hash", data_hash)
    return model_dir
