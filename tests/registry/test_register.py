"""register: FP32 and FP16 versions with their evidence, no duplicates, numbering."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

from aidetector.models.artifact import load_model_dir, read_model_config
from aidetector.models.drift import DRIFT_FILE, FEATURES, fit_drift_reference
from aidetector.registry.export import export_from_uri
from aidetector.registry.register import list_versions, register_models

from .conftest import (
    DATA_HASH,
    MlflowServer,
    eval_metrics,
    install_trained_model,
    registry_config,
)


def test_register_creates_fp32_and_fp16_versions_with_evidence(
    tmp_path: Path, server_env: MlflowServer, trained_dirs: dict[str, Path]
) -> None:
    cfg = registry_config(tmp_path, None, "model=resnet18_vit_tiny")
    client = MlflowClient(server_env.uri)
    experiment = client.create_experiment(f"training-{cfg.registry.name}")
    training_run = client.create_run(experiment).info.run_id
    install_trained_model(cfg, trained_dirs["resnet"], eval_metrics(accuracy=0.9), training_run)
    install_trained_model(cfg, trained_dirs["vit_a"], eval_metrics(fp16_accuracy_delta=-0.004))

    registered = register_models(cfg)

    names = [v.readable_name for v in registered]
    assert names == [
        "v1.0_cnn_resnet18_fp32",
        "v1.1_cnn_resnet18_fp16",
        "v2.0_vit_tiny_fp32",
        "v2.1_vit_tiny_fp16",
    ]
    versions = {v.version: v for v in list_versions(client, cfg.registry.name)}
    assert len(versions) == 4
    fp32, fp16 = versions["1"], versions["2"]
    assert fp32.run_id == fp16.run_id == training_run  # files live with their training run
    assert fp16.tags["precision"] == "fp16"
    assert fp16.tags["data_hash"] == DATA_HASH
    assert len(fp16.tags["git_commit"]) == 40
    assert json.loads(fp16.tags["resolved_config"])["model"]["arch"] == "resnet18"
    assert float(fp32.tags["metric.accuracy"]) == 0.9
    for key in ("metric.f1_fake", "metric.roc_auc", "metric.latency_ms_p95"):
        assert key in fp16.tags
    assert "v1.1_cnn_resnet18_fp16" in fp16.description and "ROC-AUC" in fp16.description
    # The FP16 version reports its own accuracy, and how far it moved from FP32.
    vit_fp16 = versions["4"]
    assert float(vit_fp16.tags["metric.accuracy"]) == 0.9 - 0.004
    assert float(vit_fp16.tags["metric.fp16_accuracy_delta"]) == -0.004
    assert "roc_auc" in vit_fp16.tags["metrics_measured_on_fp32"]
    # The FP32 version is the training export byte for byte; the FP16 one is half the size.
    source_sha = read_model_config(trained_dirs["resnet"])["weights_sha256"]
    assert fp32.tags["weights_sha256"] == source_sha == fp16.tags["source_weights_sha256"]
    files = {a.path for a in client.list_artifacts(training_run, "registry/fp16")}
    assert files == {
        "registry/fp16/model.safetensors",
        "registry/fp16/config.yaml",
        "registry/fp16/metrics.json",
    }
    # No training run in the store (its ID is None here): a run is made for the files.
    assert client.get_run(vit_fp16.run_id).info.run_name == "register-vit_tiny"
    report = json.loads(Path(cfg.registry.report).read_text())
    assert [v["version"] for v in report["versions"]] == ["1", "2", "3", "4"]


def test_registering_again_creates_no_duplicates(
    tmp_path: Path, server_env: MlflowServer, trained_dirs: dict[str, Path]
) -> None:
    cfg = registry_config(tmp_path)
    install_trained_model(cfg, trained_dirs["vit_a"], eval_metrics())
    first = register_models(cfg)
    report = Path(cfg.registry.report).read_text()
    # Evaluation re-ran with more latency samples: same weights, refreshed evidence.
    install_trained_model(cfg, trained_dirs["vit_a"], eval_metrics(latency_ms_p95=7.5))
    second = register_models(cfg)

    assert [v.created for v in first] == [True, True]
    assert [v.created for v in second] == [False, False]
    assert [v.version for v in second] == [v.version for v in first]
    client = MlflowClient(server_env.uri)
    versions = list_versions(client, cfg.registry.name)
    assert len(versions) == 2
    assert {v.tags["metric.latency_ms_p95"] for v in versions} == {"7.5"}
    assert Path(cfg.registry.report).read_text() != report  # new latency, same versions


def test_a_retrained_model_gets_the_next_major_number(
    tmp_path: Path, server_env: MlflowServer, trained_dirs: dict[str, Path]
) -> None:
    cfg = registry_config(tmp_path)
    install_trained_model(cfg, trained_dirs["vit_a"], eval_metrics())
    register_models(cfg)
    install_trained_model(cfg, trained_dirs["vit_b"], eval_metrics())
    retrained = register_models(cfg)
    assert [v.readable_name for v in retrained] == ["v2.0_vit_tiny_fp32", "v2.1_vit_tiny_fp16"]
    assert [v.version for v in retrained] == ["3", "4"]


def test_both_versions_carry_the_evaluation_drift_reference(
    tmp_path: Path, server_env: MlflowServer, trained_dirs: dict[str, Path]
) -> None:
    cfg = registry_config(tmp_path)
    model_dir = install_trained_model(cfg, trained_dirs["vit_a"], eval_metrics())
    rng = np.random.default_rng(0)
    reference = fit_drift_reference(
        rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), [(32, 32)] * 20, rng.random(20)
    )
    reference.write(cfg.paths.eval_reports / "vit_tiny" / DRIFT_FILE)

    registered = register_models(cfg)

    assert not (model_dir / DRIFT_FILE).exists()  # train's output stays as train wrote it
    for version in registered:
        exported = export_from_uri(
            server_env.uri, cfg.registry.name, tmp_path / version.precision, version=version.version
        )
        assert DRIFT_FILE in exported.files
        loaded = load_model_dir(exported.out_dir)
        assert loaded.drift is not None and loaded.drift.features == FEATURES
        assert loaded.drift.to_dict() == reference.to_dict()
