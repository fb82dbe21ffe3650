"""A real `mlflow server` (SQLite + local artifacts) for the session, and tiny model directories.

The registry tests never mock MLflow: they talk to this server over HTTP, exactly as
`MLFLOW_TRACKING_URI=http://...` users do.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import requests
import torch
import yaml
from omegaconf import DictConfig

from aidetector.models.artifact import save_model_dir
from aidetector.models.factory import build_network
from aidetector.preprocessing import Preprocessing
from conftest import TINY_VIT_SPEC, tiny_config

VIT_SPEC = TINY_VIT_SPEC
RESNET_SPEC = {
    "name": "resnet18",
    "family": "cnn",
    "arch": "resnet18",
    "img_size": 32,
    "num_classes": 2,
    "pretrained": False,
}
DATA_HASH = "d" * 64


@dataclass(frozen=True)
class MlflowServer:
    """A running tracking server: its URI and where it keeps the database and artifacts."""

    uri: str
    root: Path

    @property
    def artifacts(self) -> Path:
        """The server's --artifacts-destination."""
        return self.root / "artifacts"


def free_port() -> int:
    """Return a TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """Start `mlflow server` on 127.0.0.1 with a SQLite backend; stop it after the session."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{root}/mlflow.db",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",  # the CI machine has two cores
    ]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    log_path = root / "server.log"
    with log_path.open("w") as log:
        # Own process group, so that stopping it also stops the uvicorn worker.
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                pytest.fail(f"mlflow server exited:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{uri}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield MlflowServer(uri, root)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            # Uvicorn waits for idle keep-alive clients; its data is throwaway, so don't.
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def server_env(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> MlflowServer:
    """Point MLFLOW_TRACKING_URI (the one switch) at the test server."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    return mlflow_server


class TrainedDirs(dict[str, Path]):
    """FP32 model directories as training exports them, built on first use (ViTs take a second).

    vit_a, vit_b, vit_c: ViT-Tiny (patch 8, 32 px) with seeds 0, 1, 2; resnet: ResNet18.
    """

    SPECS: ClassVar[dict[str, tuple[dict[str, object], int]]] = {
        "vit_a": (VIT_SPEC, 0),
        "vit_b": (VIT_SPEC, 1),
        "vit_c": (VIT_SPEC, 2),
        "resnet": (RESNET_SPEC, 0),
    }

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, key: str) -> Path:
        spec, seed = self.SPECS[key]
        torch.manual_seed(seed)
        network = build_network(**spec).eval()  # type: ignore[arg-type]
        extra = {"data_hash": DATA_HASH, "mlflow_run_id": None}
        self[key] = save_model_dir(
            network, spec, Preprocessing(image_size=32), self.root / key, extra=extra
        )
        return self[key]


@pytest.fixture(scope="session")
def trained_dirs(tmp_path_factory: pytest.TempPathFactory) -> TrainedDirs:
    """Tiny trained-model directories, shared by the session and built lazily."""
    return TrainedDirs(tmp_path_factory.mktemp("trained"))


def eval_metrics(
    accuracy: float = 0.9,
    f1_fake: float = 0.9,
    latency_ms_p95: float = 5.0,
    fp16_accuracy_delta: float = 0.0,
    roc_auc: float = 0.95,
) -> dict[str, float]:
    """Return a flat metrics.json as the evaluate stage writes it."""
    return {
        "accuracy": accuracy,
        "f1_fake": f1_fake,
        "f1_real": f1_fake - 0.02,
        "roc_auc": roc_auc,
        "fp16_accuracy": accuracy + fp16_accuracy_delta,
        "fp16_f1_fake": f1_fake,
        "fp16_accuracy_delta": fp16_accuracy_delta,
        "latency_ms_mean": latency_ms_p95 * 0.8,
        "latency_ms_p95": latency_ms_p95,
        "num_params": 5_000_000,
    }


def registry_config(tmp_path: Path, name: str | None = None, *overrides: str) -> DictConfig:
    """Return the real config shrunk to ViT-Tiny, with its own registered model and reports."""
    return tiny_config(
        tmp_path,
        "model=vit_tiny",
        "model.vit_tiny.patch_size=8",
        f"registry.name={name or unique_name()}",
        f"registry.report={tmp_path}/reports/registry.json",
        f"registry.promote.report={tmp_path}/reports/promotion.json",
        *overrides,
    )


def unique_name() -> str:
    """Return a registered model name no other test uses (they share one server)."""
    return f"test-{uuid.uuid4().hex[:10]}"


def install_trained_model(
    cfg: DictConfig, source: Path, metrics: dict[str, float], run_id: str | None = None
) -> Path:
    """Put a model directory and its evaluation metrics where train and evaluate write them."""
    config = yaml.safe_load((source / "config.yaml").read_text())
    model_dir = Path(cfg.paths.models) / str(config["name"])
    shutil.rmtree(model_dir, ignore_errors=True)
    shutil.copytree(source, model_dir)
    config["mlflow_run_id"] = run_id
    (model_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    summary = {"model": config["name"], "mlflow_run_id": run_id}
    (model_dir / "train_summary.json").write_text(json.dumps(summary))
    eval_dir = Path(cfg.paths.eval_reports) / str(config["name"])
    eval_dir.mkdir(parents=True, exist_ok=True)
    (eval_dir / "metrics.json").write_text(json.dumps(metrics))
    return model_dir
