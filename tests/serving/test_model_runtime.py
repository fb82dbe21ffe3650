"""The loaded model (serving/model_runtime.py): outputs, warm-up and the domain check."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from aidetector.models.artifact import load_model_dir, save_model_dir
from aidetector.serving.model_runtime import InferenceEngine

from .conftest import SPEC, ServingEnv, offline_outputs
from .images import TRAINING_SIZE, black_png, unique_jpeg


@pytest.fixture(scope="module")
def engine(serving_env: ServingEnv) -> InferenceEngine:
    return InferenceEngine(serving_env.models["1"].model_dir, device="cpu", precision="fp32")


def arrays(engine: InferenceEngine, images: list[bytes]) -> np.ndarray:
    return np.stack([engine.preprocessing.bytes_to_array(data) for data in images])


def test_predict_returns_calibrated_prob_fake_and_domain_score(
    engine: InferenceEngine, serving_env: ServingEnv
) -> None:
    images = [unique_jpeg(500 + i) for i in range(4)] + [black_png(5)]
    served = engine.predict(arrays(engine, images))
    assert served.dtype == np.float32 and served.shape == (5, 2)
    prob_fake, score = offline_outputs(serving_env, "1", images)
    np.testing.assert_allclose(served[:, 0], prob_fake, atol=1e-6)
    np.testing.assert_allclose(served[:, 1], score, rtol=1e-5)
    # The training-like photos score at most 1 (in domain); the black image above it.
    assert bool((served[:4, 1] <= 1.0).all()) and served[4, 1] > 1.0
    assert engine.loaded.temperature == 1.5  # conftest.TEMPERATURES: calibration is applied


def test_warm_up_runs_a_full_batch(engine: InferenceEngine) -> None:
    engine.warm_up(3)


def test_check_domain_names_what_is_out_of_range(engine: InferenceEngine) -> None:
    width, height = TRAINING_SIZE
    served = engine.predict(arrays(engine, [unique_jpeg(510), black_png(6)]))
    near, far = (float(d) for d in served[:, 1])
    assert engine.check_domain(near, width, height).in_domain
    by_size = engine.check_domain(near, width * 8, height * 8)
    assert (by_size.in_domain, by_size.reason_kind) == (False, "size")
    assert by_size.reason is not None and "384x320 px" in by_size.reason
    # Half the smallest training side divided by the tolerance of 2 is still too small.
    assert engine.check_domain(near, 10, 10).reason_kind == "size"
    by_features = engine.check_domain(far, width, height)
    assert (by_features.in_domain, by_features.reason_kind) == (False, "features")
    assert by_features.reason is not None and "unlike the training data" in by_features.reason
    # Both wrong: the size is named first, as DomainProfile.check does.
    assert engine.check_domain(far, width * 8, height * 8).reason_kind == "size"
    # An upload whose size is unknown is judged on its features alone.
    assert engine.check_domain(near, None, None).in_domain


def test_a_model_without_a_domain_profile_is_always_in_domain(
    serving_env: ServingEnv, tmp_path: Path
) -> None:
    loaded = load_model_dir(serving_env.models["1"].model_dir)
    plain_dir = save_model_dir(
        loaded.network, SPEC, loaded.preprocessing, tmp_path / "plain", loaded.class_order
    )
    plain = InferenceEngine(plain_dir, device="cpu", precision="fp32")
    assert plain.loaded.domain is None
    served = plain.predict(arrays(plain, [unique_jpeg(520), black_png(7)]))
    assert served.shape == (2, 2) and np.isnan(served[:, 1]).all()
    check = plain.check_domain(math.nan, 10_000, 10)
    assert check.in_domain and check.reason is None and check.reason_kind is None
