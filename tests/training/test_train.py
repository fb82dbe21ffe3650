"""train(cfg): a tiny real run returns metrics, logs to MLflow, exports, and resumes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from aidetector.cli import cmd_demo_data, cmd_prepare
from aidetector.errors import AidetectorError
from aidetector.models.artifact import load_model_dir
from aidetector.training.module import class_balanced_weights
from aidetector.training.outputs import write_training_outputs
from aidetector.training.train import train
from conftest import CIFAKE_TRAIN, copy_cifake_sample, tiny_config


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train")
    cfg = tiny_config(root)
    cmd_demo_data(cfg, argparse.Namespace())
    cmd_prepare(cfg, argparse.Namespace())
    return root


def test_train_returns_metrics_and_logs_the_run(prepared: Path) -> None:
    cfg = tiny_config(prepared, "model=resnet18", "trainer.max_epochs=2")
    result = train(cfg, "resnet18")
    for key in ("test/acc", "test/f1_fake", "test/auc", "num_params"):
        assert key in result.metrics
    assert result.metrics["num_params"] == 11_177_538
    assert [row["epoch"] for row in result.history] == [0.0, 1.0]

    model_dir = write_training_outputs(result, cfg)
    loaded = load_model_dir(model_dir)
    assert loaded.config["data_hash"]
    client = MlflowClient(str(cfg.mlflow.tracking_uri))
    run = client.get_run(result.run_id)
    assert run.data.params["model.arch"] == "resnet18"
    assert run.data.params["trainer.max_epochs"] == "2"
    assert len(client.get_metric_history(result.run_id, "val/acc")) == 2
    assert "test/f1_fake" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "model")}
    assert {"model/model.safetensors", "model/config.yaml"} <= artifacts
    mlflow.set_tracking_uri(None)


def test_resume_picks_up_the_last_checkpoint(prepared: Path) -> None:
    # The settings this test was written for: at lr 0.001 the second epoch may not improve
    # val/f1_fake, and last.ckpt then holds the first epoch (see the closing note).
    config = (
        "model=vit_tiny",
        "trainer.max_epochs=2",
        "model.vit_tiny.patch_size=4",
        "optimizer.lr=0.002",
    )
    first = train(tiny_config(prepared, *config), "vit_tiny")
    assert [row["epoch"] for row in first.history] == [0.0, 1.0]
    resumed = train(tiny_config(prepared, *config, "callbacks.resume=true"), "vit_tiny")
    # Both epochs came from last.ckpt: nothing was trained again.
    assert resumed.history == []
    assert resumed.metrics["epochs_trained"] == 2
    with pytest.raises(AidetectorError, match="built for 8 steps but this run has 12"):
        train(
            tiny_config(
                prepared, "model=vit_tiny", "trainer.max_epochs=3", "callbacks.resume=true"
            ),
            "vit_tiny",
        )


def test_class_weights_favour_the_rare_class() -> None:
    labels = torch.tensor([0] * 60 + [1] * 10)  # 6:1 REAL:FAKE
    weights = class_balanced_weights(labels)
    assert weights[1] / weights[0] == pytest.approx(6.0)


@pytest.mark.real_data
def test_real_cifake_images_train_above_chance(tmp_path: Path) -> None:
    if not CIFAKE_TRAIN.is_dir():
        pytest.skip(f"real CIFAKE sample not present at {CIFAKE_TRAIN} (only on dev/CI machines)")
    copy_cifake_sample(tmp_path / "images", 200)
    cfg = tiny_config(
        tmp_path,
        "data=folder",
        f"data.root={tmp_path}/images",
        "model=resnet18",
        "trainer.max_epochs=3",
        "datamodule.batch_size=32",
        "optimizer.lr=0.002",  # the CNN presets' rate (conf/experiment/cifake_resnet18.yaml)
    )
    cmd_prepare(cfg, argparse.Namespace())
    report = json.loads((tmp_path / "prepared" / "report.json").read_text())
    assert report["kept"]["REAL"] + report["kept"]["FAKE"] >= 390
    result = train(cfg, "resnet18")
    assert result.metrics["test/auc"] > 0.6


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (trainer=gpu)")
def test_trainer_gpu_trains_in_mixed_precision_and_exports_fp32(prepared: Path) -> None:
    cfg = tiny_config(prepared, "model=resnet18", "trainer=gpu", "trainer.max_epochs=1")
    result = train(cfg, "resnet18")
    assert 0.0 <= result.metrics["test/acc"] <= 1.0
    run = MlflowClient(str(cfg.mlflow.tracking_uri)).get_run(result.run_id)
    assert run.data.params["trainer.accelerator"] == "gpu"
    assert run.data.params["trainer.precision"] == "16-mixed"
    # AMP keeps FP32 master weights: the exported model is FP32 and loads on the CPU.
    loaded = load_model_dir(write_training_outputs(result, cfg))
    assert next(loaded.network.parameters()).dtype == torch.float32
    mlflow.set_tracking_uri(None)


def test_one_class_sanity_batches_warn_nothing_and_the_best_score_is_kept(
    prepared: Path, recwarn: pytest.WarningsRecorder
) -> None:
    # Batches of 4 over a validation split stored in class order: the sanity check's two
    # batches hold REAL images only.
    cfg = tiny_config(prepared, "model=resnet18", "datamodule.batch_size=4")
    result = train(cfg, "resnet18")
    messages = [str(w.message) for w in recwarn]
    assert not [m for m in messages if "No positive samples" in m], messages
    assert not [m for m in messages if "LeafSpec" in m], messages
    # A best score of 0.0 is a score, not a missing one.
    assert result.metrics["best_val_score"] == result.metrics["best_val_score"]


def test_a_distilled_vit_records_its_teacher(tmp_path: Path, prepared: Path) -> None:
    overrides = (
        f"paths.prepared={prepared}/prepared",
        "trainer.max_epochs=1",
        "model.vit_tiny.distill={teacher: resnet18, weight: 0.5, temperature: 2.0}",
    )
    cfg = tiny_config(tmp_path, "model=resnet18_vit_tiny", *overrides)
    teacher_dir = write_training_outputs(train(cfg, "resnet18"), cfg)
    result = train(cfg, "vit_tiny")
    model_dir = write_training_outputs(result, cfg)

    teacher_sha = load_model_dir(teacher_dir).config["weights_sha256"]
    recorded = load_model_dir(model_dir).config["distilled_from"]
    assert recorded["distill.teacher"] == "resnet18"
    assert recorded["distill.teacher_weights_sha256"] == teacher_sha
    run = MlflowClient(str(cfg.mlflow.tracking_uri)).get_run(str(result.run_id))
    assert run.data.params["distill.teacher_weights_sha256"] == teacher_sha
    assert "train/distill_loss" in run.data.metrics
    mlflow.set_tracking_uri(None)
