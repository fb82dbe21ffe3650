"""A real `mlflow server` for the session, a separable prepared suite, and tiny model directories.

The registry tests never mock MLflow: they talk to this server over HTTP, exactly as
`MLFLOW_TRACKING_URI=http://...` users do. Promotion scores every version on the evaluation
suite, so the models here have real, controlled quality on a prepared dataset that a linear
probe separates perfectly: good (head fitted, accuracy 1.0), bad (random init, about chance),
uncalibrated (a good model saved with temperature 50: right answers at ~0.5 confidence).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from aidetector.config.schema import RunConfig
from aidetector.data.ingest import ingest_image_folder
from aidetector.data.prepared import load_split, write_prepared
from aidetector.data.splits import SplitRatios
from aidetector.inference import probe_features
from aidetector.labels import FAKE, REAL, ClassOrder
from aidetector.models.artifact import save_model_dir
from aidetector.models.factory import build_network
from aidetector.preprocessing import Preprocessing, arrays_to_batch
from conftest import TINY_VIT_SPEC, tiny_config
from mlflow_process import run_mlflow_server

VIT_SPEC = TINY_VIT_SPEC
RESNET_SPEC = {
    "name": "resnet18",
    "family": "cnn",
    "arch": "resnet18",
    "img_size": 32,
    "num_classes": 2,
    "pretrained": False,
}
VIT_64PX_SPEC = {**TINY_VIT_SPEC, "img_size": 64}
DATA_HASH = "d" * 64
SUITE_SIZE = 32
PER_CLASS = 40
# A temperature this high turns every verdict into ~0.5 confidence: right answers, ECE ~0.5.
UNCALIBRATED_TEMPERATURE = 50.0


@dataclass(frozen=True)
class MlflowServer:
    """A running tracking server: its URI and where it keeps the database and artifacts."""

    uri: str
    root: Path

    @property
    def artifacts(self) -> Path:
        """The server's --artifacts-destination."""
        return self.root / "artifacts"


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """Start `mlflow server` on 127.0.0.1 with a SQLite backend; stop it after the session."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with run_mlflow_server(root) as uri:
        yield MlflowServer(uri, root)


@pytest.fixture
def server_env(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> MlflowServer:
    """Point MLFLOW_TRACKING_URI (the one switch) at the test server."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    return mlflow_server


@pytest.fixture(scope="session")
def separable_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared dataset at 32 px that brightness alone separates: dark REAL, bright FAKE.

    40 noisy PNGs per class, ingested (60/20/20) as the prepare stage does: its test split and
    robustness variants are the evaluation suite of every registry test.
    """
    root = tmp_path_factory.mktemp("separable")
    rng = np.random.default_rng(0)
    for name, low, high in (("REAL", 0, 110), ("FAKE", 146, 256)):
        for index in range(PER_CLASS):
            path = root / "raw" / name / f"{index}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(low, high, (SUITE_SIZE, SUITE_SIZE, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path, format="PNG")
    dataset = ingest_image_folder(root / "raw", SUITE_SIZE, SplitRatios(0.6, 0.2, 0.2), seed=0)
    write_prepared(dataset, root / "prepared")
    return root / "prepared"


@dataclass(frozen=True)
class ModelRecipe:
    """How a test model is made: network spec, seed, whether its head is fitted, temperature."""

    spec: dict[str, object]
    seed: int
    fitted: bool
    temperature: float = 1.0


def fit_head(network: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> None:
    """Fit the classifier head on frozen random features until the training loss is tiny.

    A linear probe is enough on this data, and costs one forward pass of the backbone; the
    loss target makes the model confident, so its calibrated ECE passes the max_ece gate.
    """
    head = network.get_classifier()  # type: ignore[operator]
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(500):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(head(features), labels)
        if loss.item() < 0.005:
            break
        loss.backward()
        optimizer.step()


def head_accuracy(network: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Return the network's accuracy given its penultimate features."""
    with torch.no_grad():
        logits = network.get_classifier()(features)  # type: ignore[operator]
    return float((logits.argmax(dim=1) == labels).float().mean())


class TrainedDirs(dict[str, Path]):
    """FP32 model directories as training exports them, built on first use and kept.

    vit_a, vit_b: ViT-Tiny (patch 8, 32 px), head fitted (accuracy 1.0); vit_uncalibrated: the
    same kind with temperature 50; vit_bad: random init (about chance); vit_64px: random init
    at 64 px (cannot be scored on the 32 px suite); resnet: ResNet18, random init.
    """

    SPECS: ClassVar[dict[str, ModelRecipe]] = {
        "vit_a": ModelRecipe(VIT_SPEC, 0, fitted=True),
        "vit_b": ModelRecipe(VIT_SPEC, 1, fitted=True),
        "vit_uncalibrated": ModelRecipe(
            VIT_SPEC, 2, fitted=True, temperature=UNCALIBRATED_TEMPERATURE
        ),
        "vit_bad": ModelRecipe(VIT_SPEC, 0, fitted=False),
        "vit_64px": ModelRecipe(VIT_64PX_SPEC, 0, fitted=False),
        "resnet": ModelRecipe(RESNET_SPEC, 0, fitted=False),
    }

    def __init__(self, root: Path, prepared: Path) -> None:
        super().__init__()
        self.root = root
        images, labels = load_split(prepared, "train")
        self.inputs = Preprocessing(image_size=SUITE_SIZE)(arrays_to_batch(np.asarray(images)))
        self.labels = torch.as_tensor(labels)

    def __missing__(self, key: str) -> Path:
        recipe = self.SPECS[key]
        size = int(recipe.spec["img_size"])  # type: ignore[call-overload]
        torch.manual_seed(recipe.seed)
        network = build_network(**recipe.spec).eval()  # type: ignore[arg-type]
        if size == SUITE_SIZE:
            with torch.no_grad():
                features = probe_features(network, self.inputs)[0]["penultimate"]
            if recipe.fitted:
                fit_head(network, features, self.labels)
            accuracy = head_accuracy(network, features, self.labels)
            if recipe.fitted:
                assert accuracy == 1.0, f"{key}: the fitted head reached only {accuracy:.3f}"
            else:
                assert accuracy <= 0.6, f"{key}: random init scores {accuracy:.3f}; change its seed"
        extra = {"data_hash": DATA_HASH, "mlflow_run_id": None}
        self[key] = save_model_dir(
            network,
            recipe.spec,
            Preprocessing(image_size=size),
            self.root / key,
            ClassOrder((REAL, FAKE)),
            extra=extra,
            temperature=recipe.temperature,
        )
        return self[key]


@pytest.fixture(scope="session")
def trained_dirs(tmp_path_factory: pytest.TempPathFactory, separable_prepared: Path) -> TrainedDirs:
    """Tiny model directories of known quality, shared by the session and built lazily."""
    return TrainedDirs(tmp_path_factory.mktemp("trained"), separable_prepared)


@pytest.fixture(scope="session")
def shared_score_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A suite score cache for the session: the same weights on the same suite score once.

    Tests about scoring itself (what is cached, what one run computes) use their own.
    """
    return tmp_path_factory.mktemp("score-cache")


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


def registry_config(
    tmp_path: Path,
    name: str | None = None,
    *overrides: str,
    prepared: Path | None = None,
    score_cache: Path | None = None,
) -> RunConfig:
    """Return the real config shrunk to ViT-Tiny, with its own registered model and reports.

    With prepared, the evaluation suite is that prepared dataset (no extra sets), and suite
    scores are cached in score_cache (default: under tmp_path).
    """
    return tiny_config(
        tmp_path,
        "model=vit_tiny",
        "model.vit_tiny.patch_size=8",
        f"registry.name={name or unique_name()}",
        f"registry.report={tmp_path}/reports/registry.json",
        f"registry.promote.report={tmp_path}/reports/promotion.json",
        *(suite_overrides(tmp_path, prepared, score_cache) if prepared else []),
        # Batch-1 latency on a shared two-core machine can spike past the real gate (250 ms);
        # these tests decide on quality, the latency gate has its own policy tests.
        *(["registry.promote.max_latency_ms_p95=60000"] if prepared else []),
        *overrides,
    )


def suite_overrides(tmp_path: Path, prepared: Path, score_cache: Path | None = None) -> list[str]:
    """Return the overrides that score on the prepared dataset, caching in score_cache.

    The CLI composes conf/ itself: pass these with `aidetector promote`, too.
    """
    return [
        f"paths.prepared={prepared}",
        f"paths.suite={tmp_path}/suite",
        f"registry.promote.score_cache={score_cache or tmp_path / 'score-cache'}",
        "evaluate.latency_samples=5",
        "evaluate.latency_warmup=1",
    ]


def unique_name() -> str:
    """Return a registered model name no other test uses (they share one server)."""
    return f"test-{uuid.uuid4().hex[:10]}"


def install_trained_model(
    cfg: RunConfig,
    source: Path,
    metrics: dict[str, float],
    run_id: str | None = None,
    data_hash: str | None = None,
) -> Path:
    """Put a model directory and its evaluation metrics where train and evaluate write them.

    data_hash, when given, says the model was trained (and evaluated) on other data.
    """
    config = yaml.safe_load((source / "config.yaml").read_text())
    model_dir = cfg.paths.models / str(config["name"])
    shutil.rmtree(model_dir, ignore_errors=True)
    shutil.copytree(source, model_dir)
    config["mlflow_run_id"] = run_id
    if data_hash is not None:
        config["data_hash"] = data_hash
    (model_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    summary = {"model": config["name"], "mlflow_run_id": run_id}
    (model_dir / "train_summary.json").write_text(json.dumps(summary))
    eval_dir = cfg.paths.eval_reports / str(config["name"])
    eval_dir.mkdir(parents=True, exist_ok=True)
    (eval_dir / "metrics.json").write_text(json.dumps(metrics))
    return model_dir
