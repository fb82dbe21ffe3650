"""evaluate_model: FP32 and FP16 metrics, batch-1 latency, and the report files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from aidetector.evaluation.evaluate import (
    EvaluationResult,
    evaluate_model,
    write_evaluation_outputs,
)
from aidetector.models.artifact import LoadedModel
from aidetector.models.factory import build_network
from aidetector.preprocessing import Preprocessing
from conftest import tiny_config


def test_evaluate_reports_fp32_fp16_and_latency(tmp_path: Path) -> None:
    torch.manual_seed(0)
    network = build_network(arch="resnet18", img_size=32).eval()
    loaded = LoadedModel(network, Preprocessing(image_size=32), {"precision": "fp32"})
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    labels = np.array([0, 1] * 20)
    cfg = tiny_config(tmp_path)
    result = evaluate_model(loaded, images, labels, cfg.evaluate)
    metrics = result.metrics
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert abs(metrics["fp16_accuracy_delta"]) <= 0.1
    assert metrics["latency_ms_p95"] >= metrics["latency_ms_mean"] * 0.5 > 0
    assert metrics["n"] == 40


def test_outputs_are_flat_json_and_dvc_plot_files(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    result = EvaluationResult(
        metrics={"accuracy": 0.5, "roc_auc": 0.5, "f1_fake": 0.5},
        labels=np.array([0, 1, 0, 1]),
        prob_fake=np.array([0.2, 0.7, 0.6, 0.4]),
    )
    out_dir = write_evaluation_outputs(result, cfg, "resnet18")
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert all(isinstance(v, float | int) for v in metrics.values())
    assert (out_dir / "confusion.csv").read_text().splitlines()[0] == "actual,predicted"
    assert (out_dir / "roc.csv").read_text().startswith("fpr,tpr,threshold")
    for png in ("confusion_matrix.png", "roc.png"):
        assert (out_dir / "png" / png).read_bytes()[:4] == b"\x89PNG"
