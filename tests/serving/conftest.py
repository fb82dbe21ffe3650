"""Real processes for the serving tests: redis-server, and `bentoml serve` on 127.0.0.1.

Nothing is mocked. The session imports two tiny models (registry versions 1 and 2) into a
temporary BENTOML_HOME through the packaging CLI, starts one Redis and one BentoML server
(version 1, API key on) and reuses them; a test that needs a promoted model starts its own.

Each tiny model is calibrated (a temperature other than 1) and carries a domain profile
fitted on noise photos of the tests' own size (TRAINING_SIZE), so the images of images.py
are in domain and one eight times larger is not; and a drift reference fitted, as evaluation
fits it, on more such photos, so that their traffic shows no drift.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
import requests
import torch
import yaml
from omegaconf import OmegaConf

from aidetector.config.loading import compose_params
from aidetector.inference import collect_features_and_logits, run_batch
from aidetector.labels import FAKE, REAL, ClassOrder
from aidetector.models.artifact import (
    attach_drift_reference,
    load_model_dir,
    read_model_config,
    save_model_dir,
)
from aidetector.models.domain import DomainProfile, FeatureGaussian, fit_domain_profile
from aidetector.models.drift import DRIFT_FILE, fit_drift_reference
from aidetector.models.factory import build_network
from aidetector.preprocessing import Preprocessing, arrays_to_batch
from aidetector.serving.cache import ModelKey

from .images import TRAINING_SIZE, encode, photo

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BENTOML = Path(sys.executable).parent / "bentoml"
API_KEY = "test-key-0123456789"
# The shared server also takes a second API key, as during a rotation.
ROTATED_API_KEY = "test-key-rotated-456789"
FEEDBACK_KEYS = {
    "labeller-a": "feedback-key-a-0123456789",
    "labeller-b": "feedback-key-b-0123456789",
    # Only the rate-limit test sends feedback with this one, so its window starts empty.
    "labeller-c": "feedback-key-c-0123456789",
}
FEEDBACK_API_KEYS = ",".join(f"{source}:{key}" for source, key in FEEDBACK_KEYS.items())
# Small limits keep the oversized inputs of the bad-input corpus cheap to build and send.
# The shared servers run on the CPU even where a GPU is present (test_cuda.py covers that).
SERVE_OVERRIDES = [
    "serve.gpus=0",
    "serve.device=cpu",
    "serve.max_bytes=1048576",
    "serve.max_pixels=4000000",
    "serve.max_batch_images=8",
    "serve.max_batch_bytes=4194304",
    "serve.max_request_pixels=12000000",
    "serve.cache_retry_after_s=1.0",
    "serve.max_latency_ms=20000",
]
SPEC = {"name": "resnet18", "family": "cnn", "arch": "resnet18", "img_size": 32, "num_classes": 2}
# The ViT family, served by its own server (vit_server): 8 px patches, a 4x4 token grid.
VIT_SPEC = {
    "name": "vit_tiny",
    "family": "vit",
    "arch": "vit_tiny_patch16_224",
    "img_size": 32,
    "patch_size": 8,
    "num_classes": 2,
}
VIT_VERSION = "vit1"
# Distinct per version and not 1, so that a server ignoring the temperature is caught.
TEMPERATURES = {"1": 1.5, "2": 0.8}
# Each probe's fitted threshold (99th percentile of validation distances) flags about 1 in
# 100 in-domain images by design; widened, no test image of images.py is flagged by chance,
# while a black image (a domain score well above 1) still is.
THRESHOLD_MARGIN = 1.5
# Images behind each tiny model's drift reference (an evaluation's test split).
DRIFT_REFERENCE_IMAGES = 400


def free_port() -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """A real redis-server without persistence; stop() and start() simulate an outage."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir),
             # DEBUG SLEEP makes a real "slow Redis" for the timeout test.
             "--enable-debug-command", "local"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, decode_responses=True)


@dataclass
class TinyModel:
    """A random-weight model directory imported into the test model store."""

    model_dir: Path
    version: str
    readable_name: str
    tag: str
    registered_model: str
    weights_sha256: str

    @property
    def model_key(self) -> ModelKey:
        """What the server keys this model's cached verdicts by."""
        return ModelKey(self.registered_model, self.version, self.weights_sha256)


@dataclass
class ServingEnv:
    """The temporary model store, composed params.yaml and the imported models."""

    root: Path
    params_path: Path
    bentoml_home: Path
    models: dict[str, TinyModel] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for child processes: this store, these params, no ambient secrets."""
        ambient = ("API_KEY", "FEEDBACK_API_KEYS", "SENTRY_DSN")
        env = {k: v for k, v in os.environ.items() if k not in ambient}
        env.update(
            BENTOML_HOME=str(self.bentoml_home),
            AIDETECTOR_PARAMS=str(self.params_path),
            BENTOML_DO_NOT_TRACK="True",
            REDIS_URL="",
        )
        env.update(extra)
        return env


def training_like_images(start: int, count: int) -> list[bytes]:
    """JPEG noise photos of TRAINING_SIZE, like images.unique_jpeg but from other seeds."""
    return [encode(photo(start + i, TRAINING_SIZE), "JPEG", quality=90) for i in range(count)]


def fit_test_domain(network: torch.nn.Module, preprocessing: Preprocessing) -> DomainProfile:
    """A domain profile fitted on training-like images: native sides are TRAINING_SIZE."""

    def features(images: list[bytes]) -> dict[str, np.ndarray]:
        arrays = np.stack([preprocessing.bytes_to_array(data) for data in images])
        return collect_features_and_logits(network, preprocessing, arrays)[0]

    train = features(training_like_images(50_000, 256))
    # Random weights: the labels only split the features into two classes of equal size.
    labels = np.arange(len(train["penultimate"])) % 2
    fitted = fit_domain_profile(
        train,
        labels,
        features(training_like_images(60_000, 128)),
        native_sides=(min(TRAINING_SIZE), max(TRAINING_SIZE)),
        percentile=99.0,
        size_tolerance=2.0,
    )
    widened = {
        name: FeatureGaussian(
            probe.class_means, probe.precision, probe.threshold * THRESHOLD_MARGIN
        )
        for name, probe in fitted.probes.items()
    }
    return DomainProfile(widened, fitted.sizes, fitted.percentile)


def attach_test_drift(model_dir: Path, arrays: np.ndarray) -> None:
    """Fit a drift reference on training-like model inputs, as evaluation does on the test
    split (the model's own P(FAKE) included), and put it into the model directory."""
    loaded = load_model_dir(model_dir)
    prob_fake, _ = run_batch(
        loaded.network,
        loaded.preprocessing,
        arrays_to_batch(arrays),
        loaded.temperature,
        None,
        fake_index=loaded.class_order.fake_index,
    )
    reference = fit_drift_reference(arrays, [TRAINING_SIZE] * len(arrays), prob_fake.numpy())
    attach_drift_reference(
        model_dir, reference.write(model_dir.parent / f"{model_dir.name}-{DRIFT_FILE}")
    )


def _make_model(root: Path, seed: int, temperature: float, drift_inputs: np.ndarray) -> Path:
    torch.manual_seed(seed)
    network = build_network(**SPEC).eval()
    preprocessing = Preprocessing(image_size=32)
    model_dir = root / f"model_seed{seed}"
    save_model_dir(
        network,
        SPEC,
        preprocessing,
        model_dir,
        ClassOrder((REAL, FAKE)),
        metrics={"accuracy": 0.625},
        temperature=temperature,
        domain=fit_test_domain(network, preprocessing),
    )
    attach_test_drift(model_dir, drift_inputs)
    return model_dir


def offline_outputs(
    env: ServingEnv,
    version: str,
    images: list[bytes],
    device: str = "cpu",
    dtype: torch.dtype | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(P(FAKE), domain score) from the offline evaluation path on the same bytes.

    The model directory supplies the temperature and the domain profile, as it does to the
    server.
    """
    loaded = load_model_dir(env.models[version].model_dir, device=device, dtype=dtype)
    arrays = np.stack([loaded.preprocessing.bytes_to_array(data) for data in images])
    prob_fake, score = run_batch(
        loaded.network,
        loaded.preprocessing,
        arrays_to_batch(arrays),
        loaded.temperature,
        loaded.domain,
        fake_index=loaded.class_order.fake_index,
    )
    assert score is not None, "the test models carry a domain profile"
    return prob_fake.float().cpu().numpy(), score.float().cpu().numpy()


def offline_prob_fake(
    env: ServingEnv,
    version: str,
    images: list[bytes],
    device: str = "cpu",
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Calibrated P(FAKE) from the offline evaluation path on the same bytes."""
    return offline_outputs(env, version, images, device, dtype)[0]


@pytest.fixture(scope="session")
def serving_env(tmp_path_factory: pytest.TempPathFactory) -> ServingEnv:
    """Compose params with small limits and import registry versions 1 and 2."""
    root = tmp_path_factory.mktemp("serving")
    previous = Path.cwd()
    os.chdir(PROJECT_ROOT)
    try:
        # Labelled images go under the session's folder, not the project's data/feedback.
        cfg = compose_params([*SERVE_OVERRIDES, f"serve.feedback_store={root / 'feedback'}"])
    finally:
        os.chdir(previous)
    params_path = root / "params.yaml"
    params_path.write_text(OmegaConf.to_yaml(cfg))
    env = ServingEnv(root, params_path, root / "bentoml")
    env.settings = OmegaConf.to_container(cfg.serve)  # type: ignore[assignment]
    preprocessing = Preprocessing(image_size=32)
    drift_inputs = np.stack(
        [
            preprocessing.bytes_to_array(data)
            for data in training_like_images(70_000, DRIFT_REFERENCE_IMAGES)
        ]
    )
    for version, seed in (("1", 0), ("2", 1)):
        model_dir = _make_model(root, seed, TEMPERATURES[version], drift_inputs)
        env.models[version] = import_model(
            env, model_dir, version, f"v{version}.0_cnn_resnet18_fp32"
        )
    return env


def import_model(env: ServingEnv, model_dir: Path, version: str, readable: str) -> TinyModel:
    """Import a model directory into the test store through the packaging CLI."""
    report = env.root / f"package-{version}.json"
    subprocess.run(
        [sys.executable, "-m", "aidetector.registry.bento", "--model-dir", str(model_dir),
         "--version", version, "--readable-name", readable, "--no-build",
         "--report", str(report)],
        env=env.env(), check=True, cwd=PROJECT_ROOT, capture_output=True,
    )  # fmt: skip
    summary = json.loads(report.read_text())
    sha = read_model_config(model_dir)["weights_sha256"]
    return TinyModel(
        model_dir, version, readable, summary["model_tag"], summary["registered_model"], sha
    )


@pytest.fixture(scope="session")
def vit_model(serving_env: ServingEnv) -> TinyModel:
    """A random-weight tiny ViT in the same store (not in serving_env.models), no Redis."""
    torch.manual_seed(2)
    model_dir = serving_env.root / "model_vit"
    save_model_dir(
        build_network(**VIT_SPEC).eval(),
        VIT_SPEC,
        Preprocessing(image_size=32),
        model_dir,
        ClassOrder((REAL, FAKE)),
        temperature=1.2,
    )
    return import_model(serving_env, model_dir, VIT_VERSION, "vit1_vit_tiny_fp32")


@pytest.fixture(scope="session")
def vit_server(serving_env: ServingEnv, vit_model: TinyModel) -> Iterator[BentoServer]:
    """A server for the ViT: the other family /explain must handle."""
    env = serving_env.env(AIDETECTOR_MODEL_TAG=vit_model.tag)
    handle = start_server(env, serving_env.root / "vit-server.log", API_KEY)
    try:
        wait_until(handle, "/readyz", 200)
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server on a free port for the whole session."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@dataclass
class BentoServer:
    """A `bentoml serve` subprocess and the file its output goes to."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    api_key: str | None = None
    # Sent to /feedback instead of api_key (labeller-a's on the servers start_server starts).
    feedback_key: str | None = None
    # Where this server's /feedback writes labelled images (serve.feedback_store).
    feedback_store: Path | None = None

    def headers(self, path: str = "", **extra: str) -> dict[str, str]:
        key = self.feedback_key if path == "/feedback" and self.feedback_key else self.api_key
        return {**({"X-API-Key": key} if key else {}), **extra}

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        headers = self.headers(path, **kwargs.pop("headers", {}))
        return requests.post(self.url + path, headers=headers, timeout=60, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        """The JSON log lines written so far (optionally one event type)."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        parsed = [json.loads(line) for line in lines if line.startswith('{"timestamp"')]
        return [p for p in parsed if event is None or p["event"] == event]

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of one sample on /metrics, or None when absent."""
        for line in self.get("/metrics").text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_server(
    env: dict[str, str],
    log_path: Path,
    api_key: str | None = API_KEY,
    feedback_keys: str | None = FEEDBACK_API_KEYS,
) -> BentoServer:
    """Start `bentoml serve` on a free port (not waiting for readiness).

    API_KEY and FEEDBACK_API_KEYS come from the arguments (None: unset), whatever env says;
    without an API key the service refuses to start unless serve.allow_anonymous is true.

    Each server gets its own BENTOML_HOME sharing the model store: `bentoml serve` empties
    $BENTOML_HOME/prometheus_multiproc_dir at start, which would wipe a running server's
    metrics.
    """
    port = free_port()
    store = Path(env["BENTOML_HOME"])
    home = log_path.parent / f"bentoml-home-{port}"
    home.mkdir()
    (home / "models").symlink_to(store / "models", target_is_directory=True)
    env = {
        **env,
        "BENTOML_HOME": str(home),
        "API_KEY": api_key or "",
        "FEEDBACK_API_KEYS": feedback_keys or "",
    }
    log = log_path.open("wb")
    process = subprocess.Popen(
        [str(BENTOML), "serve", "aidetector.serving.service:AIDetector",
         "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT, start_new_session=True,
    )  # fmt: skip
    feedback_key = FEEDBACK_KEYS["labeller-a"] if feedback_keys == FEEDBACK_API_KEYS else None
    first_key = api_key.split(",")[0] if api_key else None  # the client sends one
    return BentoServer(f"http://127.0.0.1:{port}", process, log_path, first_key, feedback_key)


def wait_until(server: BentoServer, path: str, status: int, timeout: float = 180.0) -> None:
    """Poll path until it answers status; fail with the server log if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"bentoml serve exited:\n{server.log_path.read_text()[-4000:]}")
        try:
            if requests.get(server.url + path, timeout=5).status_code == status:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or still starting its workers
        time.sleep(0.2)
    pytest.fail(f"{path} never answered {status}:\n{server.log_path.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def server(serving_env: ServingEnv, redis_server: RedisServer) -> Iterator[BentoServer]:
    """The shared server: model version 1, Redis on, two API keys and three feedback keys."""
    env = serving_env.env(
        AIDETECTOR_MODEL_TAG=serving_env.models["1"].tag, REDIS_URL=redis_server.url
    )
    handle = start_server(env, serving_env.root / "server.log", f"{API_KEY},{ROTATED_API_KEY}")
    try:
        wait_until(handle, "/readyz", 200)
        yield handle
    finally:
        handle.stop()


# The store server's settings over the shared ones: a drift window the drift tests fill
# exactly (scores recomputed on every image), and the packaged upload limits, which the
# full-resolution xsource photos need (up to 4024 px, 2.3 MB).
STORE_SERVER_SETTINGS = {
    "drift_window": 200,
    "drift_min_samples": 200,
    "drift_update_every": 1,
    "max_bytes": 20971520,
    "max_pixels": 50000000,
    "max_request_pixels": 100000000,
    "max_batch_bytes": 25165824,
}


@pytest.fixture(scope="session")
def store_server(serving_env: ServingEnv) -> Iterator[BentoServer]:
    """Model version 2 with a feedback store of its own, a drift window of 200 images and
    full-size upload limits; no Redis, so every image is decoded (and counted) once."""
    store = serving_env.root / "store-server-feedback"
    overrides = serving_env.root / "store-server.yaml"
    overrides.write_text(yaml.safe_dump({**STORE_SERVER_SETTINGS, "feedback_store": str(store)}))
    env = serving_env.env(
        AIDETECTOR_MODEL_TAG=serving_env.models["2"].tag,
        AIDETECTOR_SERVE_OVERRIDES=str(overrides),
    )
    handle = start_server(env, serving_env.root / "store-server.log")
    handle.feedback_store = store
    try:
        wait_until(handle, "/readyz", 200)
        yield handle
    finally:
        handle.stop()
