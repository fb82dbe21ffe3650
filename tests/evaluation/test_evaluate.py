"""evaluate_model on the suite: flat test metrics with calibration, FP16 and latency; reports."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_suite import EXTRA_SET, SIZE, VARIANTS, prepare_suite_dirs

from aidetector.evaluation.evaluate import (
    EvaluationResult,
    evaluate_model,
    write_evaluation_outputs,
)
from aidetector.evaluation.suite import Suite, load_suite
from aidetector.models.artifact import LoadedModel
from aidetector.models.drift import DRIFT_FILE, FEATURES, DriftReference, image_features
from aidetector.models.factory import build_network
from aidetector.preprocessing import Preprocessing
from conftest import tiny_config


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Suite:
    prepared, suite_dir = prepare_suite_dirs(tmp_path_factory.mktemp("evaluate"))
    return load_suite(prepared, suite_dir, [EXTRA_SET], VARIANTS)


@pytest.fixture(scope="module")
def result(suite: Suite, tmp_path_factory: pytest.TempPathFactory) -> EvaluationResult:
    root = tmp_path_factory.mktemp("evaluate-config")
    torch.manual_seed(0)
    network = build_network(arch="resnet18", img_size=SIZE).eval()
    config = {
        "precision": "fp32",
        "class_names": ["REAL", "FAKE"],
        "temperature": 1.5,
        # What load_model_dir gives: the explained layer's default is read from it.
        "network": {"arch": "resnet18", "img_size": SIZE},
    }
    loaded = LoadedModel(network, Preprocessing(image_size=SIZE), config)
    return evaluate_model(loaded, suite, tiny_config(root).evaluate)


def test_evaluate_reports_calibration_domain_fp16_and_latency(result: EvaluationResult) -> None:
    metrics = result.metrics
    for key in (
        "ece",
        "ece_uncalibrated",
        "brier",
        "flagged",
        "temperature",
        "fp16_accuracy",
        "fp16_accuracy_delta",
        "fp16_f1_fake",
        "latency_ms_mean",
        "latency_ms_p95",
        "num_params",
    ):
        assert key in metrics, key
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["n"] == 6
    assert metrics["temperature"] == 1.5
    assert metrics["flagged"] == 0.0  # no domain profile: nothing is flagged
    assert 0.0 <= metrics["ece"] <= 1.0 and 0.0 <= metrics["brier"] <= 1.0
    assert abs(metrics["fp16_accuracy_delta"]) <= 1 / 6 + 1e-9
    assert metrics["latency_ms_p95"] >= metrics["latency_ms_mean"] * 0.5 > 0
    # The flat metrics are the suite table's test row.
    assert result.suite is not None
    assert metrics["ece"] == result.suite.rows["test"]["ece"]
    assert metrics["accuracy"] == result.suite.rows["test"]["accuracy"]


def test_outputs_hold_the_suite_table_and_the_reliability_diagram(
    result: EvaluationResult, tmp_path: Path
) -> None:
    cfg = tiny_config(tmp_path)

    out_dir = write_evaluation_outputs(result, cfg, "resnet18")

    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert all(isinstance(v, float | int) for v in metrics.values())
    suite = json.loads((out_dir / "suite.json").read_text())
    assert result.suite is not None
    assert suite["suite_hash"] == result.suite.suite_hash
    assert {"test", "test:jpeg_q75", EXTRA_SET, f"{EXTRA_SET}/FAKE/genA"} <= set(suite)
    assert suite["test"]["accuracy_drop"] == 0.0
    with (out_dir / "reliability.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["bin_lower", "bin_upper", "confidence", "accuracy", "count"]
    assert sum(int(row[4]) for row in rows[1:]) == 6
    assert (out_dir / "confusion.csv").read_text().splitlines()[0] == "actual,predicted"
    assert (out_dir / "roc.csv").read_text().startswith("fpr,tpr,threshold")
    for png in ("confusion_matrix.png", "roc.png", "reliability.png"):
        assert (out_dir / "png" / png).read_bytes()[:4] == b"\x89PNG"
    # The gallery of confident mistakes sits with the plots: a DVC output, logged to MLflow.
    assert result.mistakes is not None
    gallery = json.loads((out_dir / "png" / "mistakes" / "mistakes.json").read_text())
    assert [m["file"] for m in gallery["mistakes"]] == [m.file for m in result.mistakes.mistakes]
    for mistake in result.mistakes.mistakes:
        assert (out_dir / "png" / "mistakes" / mistake.file).read_bytes()[:4] == b"\x89PNG"


def test_the_drift_reference_profiles_the_test_split(
    suite: Suite, result: EvaluationResult, tmp_path: Path
) -> None:
    out_dir = write_evaluation_outputs(result, tiny_config(tmp_path), "resnet18")

    reference = DriftReference.read(out_dir / DRIFT_FILE)
    assert reference.samples == result.metrics["n"] == 6
    assert reference.features == FEATURES  # native sizes come from the prepared manifest
    # The test images, their native sizes and P(FAKE) themselves: PSI 0, nothing drifted.
    sizes = np.stack([suite.test.meta.widths, suite.test.meta.heights], axis=1)
    rows = np.column_stack([image_features(suite.test.images, sizes), result.prob_fake])
    assert max(reference.psi(rows).values()) == pytest.approx(0.0, abs=1e-12)
