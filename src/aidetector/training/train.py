"""train(cfg, model_name): fit one configured model with Lightning and return its results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig, OmegaConf
from torch import nn

from aidetector.classes import ClassOrder
from aidetector.data.prepared import read_manifest
from aidetector.errors import AidetectorError
from aidetector.models.factory import count_parameters
from aidetector.preprocessing import Preprocessing
from aidetector.tracking import (
    artifact_location,
    flatten_config,
    sqlite_store_lock,
    tracking_uri,
)
from aidetector.training.calibrate import Calibration, CalibrationSettings, calibrate
from aidetector.training.history import EpochHistory
from aidetector.training.module import DetectorModule, class_balanced_weights


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


def preprocessing_from_config(data_cfg: DictConfig) -> Preprocessing:
    """Return the preprocessing a data config describes."""
    return Preprocessing(
        image_size=int(data_cfg.image_size),
        mean=tuple(data_cfg.mean),
        std=tuple(data_cfg.std),
        equalize=bool(data_cfg.equalize),
    )


def model_spec(cfg: DictConfig, model_name: str) -> DictConfig:
    """Return the config node of one model, or a clear error listing the configured ones."""
    if model_name not in cfg.model:
        known = ", ".join(cfg.model.keys())
        raise AidetectorError(f"model '{model_name}' is not configured; configured models: {known}")
    spec: DictConfig = cfg.model[model_name]
    return spec


def run_config(cfg: DictConfig, model_name: str) -> dict[str, Any]:
    """Return the resolved config of one model's run (other models left out)."""
    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    config["model"] = config["model"][model_name]
    # Hydra's top-level keys are strings; OmegaConf types a container's keys more widely.
    return {str(key): value for key, value in config.items()}


def train(cfg: DictConfig, model_name: str) -> TrainResult:
    """Fit model_name on the prepared data, test the best checkpoint, return the results."""
    spec = model_spec(cfg, model_name)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    preprocessing = preprocessing_from_config(cfg.data)
    net = instantiate(spec)  # first: a bad architecture or size fails before any data loads
    datamodule = instantiate(cfg.datamodule)
    labels = torch.from_numpy(datamodule.train_labels())
    # The label order is the prepared data's, whatever the config says now.
    class_order = ClassOrder.from_names(read_manifest(Path(cfg.paths.prepared))["classes"])
    # _partial_ keeps the objects below out of OmegaConf (which would turn them into configs).
    module: DetectorModule = instantiate(cfg.module, _partial_=True)(
        net=net,
        preprocessing=preprocessing,
        class_order=class_order,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler),
        class_weights=class_balanced_weights(labels),
    )

    uri = tracking_uri(cfg)
    with sqlite_store_lock(uri):
        logger = MLFlowLogger(
            experiment_name=str(cfg.mlflow.experiment),
            run_name=model_name,
            tracking_uri=uri,
            artifact_location=artifact_location(cfg),
            log_model=False,
        )
        logger.log_hyperparams(flatten_config(run_config(cfg, model_name)))
        logger.log_hyperparams({"num_params": count_parameters(net)})

    checkpoint_dir = Path(cfg.paths.checkpoints) / model_name
    checkpoint = ModelCheckpoint(
        dirpath=checkpoint_dir,
        filename="best",
        monitor=str(cfg.callbacks.monitor),
        mode=str(cfg.callbacks.mode),
        save_last=True,
        save_top_k=1,
        enable_version_counter=False,
    )
    history = EpochHistory()
    callbacks: list[pl.Callback] = [
        checkpoint,
        EarlyStopping(
            monitor=str(cfg.callbacks.monitor),
            mode=str(cfg.callbacks.mode),
            patience=int(cfg.callbacks.early_stopping_patience),
        ),
        LearningRateMonitor(logging_interval="epoch"),
        history,
    ]
    trainer_overrides: dict[str, Any] = {}
    if cfg.trainer.get("sync_batchnorm") and cfg.trainer.accelerator == "cpu":
        trainer_overrides["sync_batchnorm"] = False  # SyncBatchNorm needs CUDA; gloo DDP on CPU
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=logger,
        default_root_dir=str(checkpoint_dir),
        **trainer_overrides,
    )
    last = checkpoint_dir / "last.ckpt"
    resume_from = str(last) if cfg.callbacks.resume and last.is_file() else None
    if not resume_from:
        # A fresh run must not mix with checkpoints of an earlier config.
        for stale in checkpoint_dir.glob("*.ckpt"):
            stale.unlink(missing_ok=True)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    test_results = trainer.test(module, datamodule=datamodule, ckpt_path="best", weights_only=True)

    metrics = {key: float(value) for key, value in test_results[0].items()}
    metrics["num_params"] = float(count_parameters(net))
    metrics["best_val_score"] = float(checkpoint.best_model_score or float("nan"))
    metrics["epochs_trained"] = float(trainer.current_epoch)
    calibration = None
    if trainer.is_global_zero:  # one rank fits; the others' results are discarded
        settings = CalibrationSettings.from_config(cfg.calibration)
        calibration = calibrate(
            module.net,
            preprocessing,
            Path(cfg.paths.prepared),
            settings,
            class_order,
            int(cfg.evaluate.batch_size),
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
        # A DictConfig converts to a dict; OmegaConf types to_container's result more widely.
        spec=dict(OmegaConf.to_container(spec, resolve=True)),  # type: ignore[arg-type]
        run_id=logger.run_id if trainer.is_global_zero else None,
        history=history.rows,
        is_global_zero=trainer.is_global_zero,
        calibration=calibration,
    )
