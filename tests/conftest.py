"""Shared fixtures: the project root, and configs composed from the real conf/ then shrunk."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel

from aidetector.config.loading import compose_config
from aidetector.config.schema import RunConfig

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CIFAKE_TRAIN = PROJECT_ROOT.parent / "shared" / "data" / "cifake" / "train"
# A ViT small enough to build in milliseconds: the spec of tests that need a real network.
TINY_VIT_SPEC = {
    "name": "vit_tiny",
    "family": "vit",
    "arch": "vit_tiny_patch16_224",
    "img_size": 32,
    "patch_size": 8,
    "num_classes": 2,
    "pretrained": False,
}


@pytest.fixture
def in_project_root() -> Iterator[Path]:
    """Run the test from the project root (conf/ and params.yaml are found relative to it)."""
    previous = Path.cwd()
    os.chdir(PROJECT_ROOT)
    try:
        yield PROJECT_ROOT
    finally:
        os.chdir(previous)


def tiny_config(tmp_path: Path, *overrides: str) -> RunConfig:
    """Compose the real config, then point every output under tmp_path and shrink the run."""
    previous = Path.cwd()
    os.chdir(PROJECT_ROOT)
    try:
        cfg = compose_config(
            [
                f"demo.root={tmp_path}/raw",
                "demo.n_per_class=40",
                # The tests' own split (the demo's 40/25/35 would leave 32 training images).
                "data.split.train=0.7",
                "data.split.val=0.15",
                "data.split.test=0.15",
                f"paths.prepared={tmp_path}/prepared",
                f"paths.models={tmp_path}/models",
                f"paths.checkpoints={tmp_path}/checkpoints",
                f"paths.train_reports={tmp_path}/reports/train",
                f"paths.eval_reports={tmp_path}/reports/eval",
                f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
                f"mlflow.artifact_root={tmp_path}/mlartifacts",
                "trainer.max_epochs=1",
                "trainer.enable_progress_bar=false",
                "datamodule.batch_size=16",
                "evaluate.latency_samples=5",
                "evaluate.latency_warmup=1",
                *overrides,
            ]
        )
    finally:
        os.chdir(previous)
    return cfg


Model = TypeVar("Model", bound=BaseModel)


def with_value(config: Model, key: str, value: Any) -> Model:
    """Return a copy of a frozen config with one dotted key replaced, validated again."""
    data = config.model_dump(by_alias=True, exclude_unset=True)
    *parents, last = key.split(".")
    node = data
    for part in parents:
        node = node[part]
    node[last] = value
    return type(config).model_validate(data)


@pytest.fixture(autouse=True)
def _no_ambient_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests use their own stores; never a tracking server from the developer's shell."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def copy_cifake_sample(dest: Path, per_class: int) -> Path:
    """Copy the first per_class images of each class of the shared CIFAKE sample to dest."""
    for class_name in ("REAL", "FAKE"):
        (dest / class_name).mkdir(parents=True)
        for source in sorted((CIFAKE_TRAIN / class_name).iterdir())[:per_class]:
            shutil.copy(source, dest / class_name / source.name)
    return dest
