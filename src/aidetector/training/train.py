"""train(cfg, model_name): fit one configured model with Lightning and return its results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger
from torch import nn

from aidetector.config.schema import RunConfig
from aidetector.config.tracking import (
    artifact_location,
    flatten_config,
    sqlite_store_lock,
    tracking_uri,
)
from aidetector.data.prepared import read_manifest
from aidetector.errors import AidetectorError
from aidetector.labels import ClassOrder
from aidetector.models.factory import count_parameters
from aidetector.preprocessing import Preprocessing
from aidetector.training.calibrate import Calibration, CalibrationSettings, calibrate
from aidetector.training.distill import Teacher, load_teacher
from aidetector.training.history import epoch_rows
from aidetector.training.module import DetectorModule, class_balanced_weights
from aidetector.training.quiet import silence_library_noise


@dataclass
class TrainResult:
    """What a training run produced: metrics, the best network and its MLflow run."""

    model_name: str
    metrics: dict[str, float]
    network: nn.Module
    preprocessing: Preprocessing
    class_order: ClassOrder
    spec: dict[str, Any]
    run_id: str | None
    history: list[dict[str, float]] = field(default_factory=list)
    is_global_zero: bool = True
    calibration: Calibration | None = None
    # The teacher's name, weights sha256 and MLflow run, for a distilled model.
    teacher: dict[str, str] = field(default_factory=dict)


def check_prepared_matches(
    manifest: dict[str, Any], preprocessing: Preprocessing, prepared: Path
) -> None:
    """Raise unless the prepared squares are what the configured preprocessing expects.

    A crop-mode model trained on resized squares (or the reverse) would record one mode in
    its config.yaml and have learnt from the other.
    """
    mode = str(manifest.get("preprocessing_mode", "resize"))
    size = int(manifest["image_size"])
    if mode != preprocessing.mode or size != preprocessing.array_size:
        raise AidetectorError(
            f"{prepared} holds {size} px squares prepared in {mode} mode, but data says "
            f"{preprocessing.array_size} px in {preprocessing.mode} mode: re-run the prepare "
            "stage (`aidetector prepare` or `dvc repro prepare`)"
        )


def train(cfg: RunConfig, model_name: str) -> TrainResult:
    """Fit model_name on the prepared data, test the best checkpoint, return the results."""
    silence_library_noise()
    spec = cfg.model_spec(model_name)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    preprocessing = cfg.data.preprocessing()
    # First: a bad architecture or size fails before any data loads.
    net = instantiate(spec.instantiate_args())
    datamodule = instantiate(cfg.datamodule.instantiate_args())
    labels = torch.from_numpy(datamodule.train_labels())
    manifest = read_manifest(cfg.paths.prepared)
    check_prepared_matches(manifest, preprocessing, cfg.paths.prepared)
    # The label order is the prepared data's, whatever the config says now.
    class_order = ClassOrder.from_names(manifest["classes"])
    teacher: Teacher | None = None
    teacher_identity: dict[str, str] = {}
    if spec.distill is not None:
        teacher, teacher_identity = load_teacher(spec.distill, cfg.paths.models, class_order)
    # _partial_ keeps the objects below out of OmegaConf (which would turn them into configs).
    module: DetectorModule = instantiate(cfg.module.instantiate_args(), _partial_=True)(
        net=net,
        preprocessing=preprocessing,
        class_order=class_order,
        optimizer=instantiate(cfg.optimizer.instantiate_args()),
        scheduler=instantiate(cfg.scheduler.instantiate_args()),
        class_weights=class_balanced_weights(labels),
        teacher=teacher,
    )

    uri = tracking_uri(cfg.mlflow)
    with sqlite_store_lock(uri):
        logger = MLFlowLogger(
            experiment_name=cfg.mlflow.experiment,
            run_name=model_name,
            tracking_uri=uri,
            artifact_location=artifact_location(cfg.mlflow),
            log_model=False,
        )
        logger.log_hyperparams(flatten_config(cfg.run_params(model_name)))
        logger.log_hyperparams({"num_params": count_parameters(net), **teacher_identity})

    checkpoint_dir = cfg.paths.checkpoints / model_name
    callbacks_cfg = cfg.callbacks
    checkpoint = ModelCheckpoint(
        dirpath=checkpoint_dir,
        filename="best",
        monitor=callbacks_cfg.monitor,
        mode=callbacks_cfg.mode,
        save_last=True,
        save_top_k=1,
        enable_version_counter=False,
    )
    # Per-epoch metrics for the history plot; a new version folder per run.
    # Beside the checkpoints, not inside: ModelCheckpoint warns about a non-empty folder.
    history = CSVLogger(save_dir=cfg.paths.checkpoints / "history", name=model_name)
    callbacks: list[pl.Callback] = [
        checkpoint,
        EarlyStopping(
            monitor=callbacks_cfg.monitor,
            mode=callbacks_cfg.mode,
            patience=callbacks_cfg.early_stopping_patience,
        ),
        LearningRateMonitor(logging_interval="epoch"),
    ]
    trainer_overrides: dict[str, Any] = {}
    if cfg.trainer.sync_batchnorm and cfg.trainer.accelerator == "cpu":
        trainer_overrides["sync_batchnorm"] = False  # SyncBatchNorm needs CUDA; gloo DDP on CPU
    trainer: pl.Trainer = instantiate(
        cfg.trainer.instantiate_args(),
        callbacks=callbacks,
        logger=[logger, history],
        default_root_dir=str(checkpoint_dir),
        **trainer_overrides,
    )
    last = checkpoint_dir / "last.ckpt"
    resume_from = str(last) if callbacks_cfg.resume and last.is_file() else None
    if not resume_from:
        # A fresh run must not mix with checkpoints of an earlier config.
        for stale in checkpoint_dir.glob("*.ckpt"):
            stale.unlink(missing_ok=True)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    test_results = trainer.test(module, datamodule=datamodule, ckpt_path="best", weights_only=True)

    metrics = {key: float(value) for key, value in test_results[0].items()}
    metrics["num_params"] = float(count_parameters(net))
    best = checkpoint.best_model_score  # a tensor; 0.0 is a real score, None is none
    metrics["best_val_score"] = float("nan") if best is None else float(best)
    metrics["epochs_trained"] = float(trainer.current_epoch)
    calibration = None
    if trainer.is_global_zero:  # one rank fits; the others' results are discarded
        settings = CalibrationSettings(**cfg.calibration.model_dump())
        calibration = calibrate(
            module.net,
            preprocessing,
            cfg.paths.prepared,
            settings,
            class_order,
            cfg.evaluate.batch_size,
        )
        metrics.update(calibration.metrics)
        if logger.run_id:
            logger.log_metrics(calibration.metrics)
    return TrainResult(
        model_name=model_name,
        metrics=metrics,
        network=module.net,
        preprocessing=preprocessing,
        class_order=class_order,
        spec=spec.instantiate_args(),
        run_id=logger.run_id if trainer.is_global_zero else None,
        history=epoch_rows(Path(history.log_dir) / "metrics.csv") if trainer.is_global_zero else [],
        is_global_zero=trainer.is_global_zero,
        calibration=calibration,
        teacher=teacher_identity,
    )
