"""The GPU path: FP16 on CUDA, served and offline, and the NVML utilisation gauge.

These need a CUDA device and skip elsewhere, with that reason. `make test-gpu` runs them;
on a GPU machine the rest of the suite still pins its shared server to the CPU.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from aidetector.serving.model_runtime import InferenceEngine

from .conftest import (
    BentoServer,
    ServingEnv,
    offline_outputs,
    offline_prob_fake,
    start_server,
    wait_until,
)
from .images import MULTIPART, RAW, convertible_images, multipart, unique_jpeg

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA GPU (FP16 serving, NVML metric)"
    ),
]

# FP16 keeps about 3 significant digits; random-weight logits stay small.
FP16_VS_FP32_ATOL = 1e-2
# The same FP16 network on the same GPU; cuDNN may pick other kernels per batch size.
SAME_PRECISION_ATOL = 2e-3
# The domain score (Mahalanobis domain_score / threshold, largest over the probes) from FP16
# features against FP32 ones.
SCORE_RTOL = 5e-2


def test_engine_runs_fp16_on_cuda_close_to_fp32(serving_env: ServingEnv) -> None:
    engine = InferenceEngine(serving_env.models["1"].model_dir)  # device and precision auto
    assert engine.device == "cuda" and engine.precision == "fp16"
    assert next(engine.loaded.network.parameters()).dtype == torch.float16
    engine.warm_up(32)

    images = list(convertible_images().values())
    served = engine.predict(np.stack([engine.preprocessing.bytes_to_array(d) for d in images]))
    assert served.dtype == np.float32 and served.shape == (len(images), 2)
    fp32_cpu, score = offline_outputs(serving_env, "1", images)
    np.testing.assert_allclose(served[:, 0], fp32_cpu, atol=FP16_VS_FP32_ATOL)
    # The profile stays float32 on the GPU; only the FP16 features move the domain score.
    np.testing.assert_allclose(served[:, 1], score, rtol=SCORE_RTOL)


@pytest.fixture(scope="module")
def gpu_server(serving_env: ServingEnv) -> Iterator[BentoServer]:
    """A server given one GPU, with device and precision left on auto."""
    overrides = serving_env.root / "gpu-overrides.yaml"
    overrides.write_text("device: auto\nprecision: auto\ngpus: 1\n")
    env = serving_env.env(
        AIDETECTOR_MODEL_TAG=serving_env.models["1"].tag,
        AIDETECTOR_SERVE_OVERRIDES=str(overrides),
    )
    handle = start_server(env, serving_env.root / "gpu-server.log")
    try:
        wait_until(handle, "/readyz", 200)
        yield handle
    finally:
        handle.stop()


def test_served_fp16_equals_offline_fp16(gpu_server: BentoServer, serving_env: ServingEnv) -> None:
    images = convertible_images()
    fp16_gpu = offline_prob_fake(serving_env, "1", list(images.values()), "cuda", torch.float16)
    fp32_cpu = offline_prob_fake(serving_env, "1", list(images.values()))
    for (name, data), want16, want32 in zip(images.items(), fp16_gpu, fp32_cpu, strict=True):
        response = gpu_server.post("/predict", data=data, headers=RAW)
        assert response.status_code == 200, (name, response.text)
        body = response.json()
        assert body["model"]["precision"] == "fp16", body
        assert body["prob_fake"] == pytest.approx(float(want16), abs=SAME_PRECISION_ATOL), name
        assert body["prob_fake"] == pytest.approx(float(want32), abs=FP16_VS_FP32_ATOL), name
    ready = gpu_server.events("model_ready")
    assert ready and ready[-1]["device"] == "cuda" and ready[-1]["precision"] == "fp16"


def test_batch_on_gpu_keeps_input_order(gpu_server: BentoServer) -> None:
    images = [unique_jpeg(900 + i) for i in range(8)]
    batch = gpu_server.post(
        "/predict_batch", data=multipart([("files", d) for d in images]), headers=MULTIPART
    )
    assert batch.status_code == 200, batch.text
    singles = [gpu_server.post("/predict", data=d, headers=RAW).json() for d in images]
    got = [r["prob_fake"] for r in batch.json()["results"]]
    np.testing.assert_allclose(got, [s["prob_fake"] for s in singles], atol=SAME_PRECISION_ATOL)


def test_gpu_utilisation_gauge_is_sampled(gpu_server: BentoServer) -> None:
    # The sampler publishes every 5 s from the moment the model is ready.
    deadline = time.monotonic() + 30
    value = None
    while value is None and time.monotonic() < deadline:
        value = gpu_server.metric("gpu_utilization_percent", gpu="0")
        time.sleep(1)
    assert value is not None, 'gpu_utilization_percent{gpu="0"} never appeared on /metrics'
    assert 0.0 <= value <= 100.0
