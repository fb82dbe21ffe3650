"""The drift profile: per-image features, PSI over fixed bins, and the reference that travels
in the model directory (written at evaluation, attached at registration, loaded by serving)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from aidetector.errors import AidetectorError
from aidetector.labels import DEFAULT_ORDER, ClassOrder
from aidetector.models.artifact import (
    attach_drift_reference,
    convert_model_dir,
    load_model_dir,
    model_files,
    read_model_config,
    save_model_dir,
)
from aidetector.models.drift import (
    DRIFT_FILE,
    FEATURES,
    IMAGE_FEATURES,
    DriftReference,
    FeatureBins,
    fit_drift_reference,
    image_features,
)
from aidetector.models.factory import build_network
from aidetector.preprocessing import Preprocessing
from conftest import TINY_VIT_SPEC


def features_of(image: np.ndarray, size: tuple[int, int] = (64, 48)) -> dict[str, float]:
    row = image_features(image[None], [size])[0]
    return dict(zip(IMAGE_FEATURES, row.tolist(), strict=True))


def test_features_of_plain_images() -> None:
    white = features_of(np.full((32, 32, 3), 255, np.uint8))
    assert white == {
        "width": 64.0,
        "height": 48.0,
        "aspect_ratio": pytest.approx(64 / 48),
        "brightness": pytest.approx(1.0),
        "saturation": 0.0,
        "high_freq": pytest.approx(0.0),
    }
    red = features_of(np.tile(np.array([255, 0, 0], np.uint8), (32, 32, 1)))
    assert red["saturation"] == pytest.approx(1.0)
    assert red["brightness"] == pytest.approx(0.299, abs=1e-6)
    assert features_of(np.zeros((32, 32, 3), np.uint8))["saturation"] == 0.0  # no 0/0


def test_high_frequency_energy_separates_sharp_from_smooth() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    gradient = np.repeat(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], 32, 0)
    gradient = np.repeat(gradient, 3, 2)
    assert features_of(noise)["high_freq"] > 100 * features_of(gradient)["high_freq"]


def test_large_inputs_are_read_at_a_stride_with_the_same_means() -> None:
    rng = np.random.default_rng(1)
    big = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    assert features_of(big)["brightness"] == pytest.approx(0.5, abs=0.02)


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(2)
    bins = FeatureBins.fit(rng.normal(size=2000))
    assert len(bins.edges) == 11 and len(bins.expected) == 12
    assert bins.expected[0] == 0.0 and bins.expected[-1] == 0.0  # below min, above max
    assert bins.psi(rng.normal(size=2000)) < 0.05  # "stable" is below 0.1
    assert 0.1 < bins.psi(rng.normal(0.3, size=2000)) < 0.25  # moderate
    assert bins.psi(rng.normal(1.0, size=2000)) > 0.25  # significant


def test_a_constant_reference_flags_any_other_value() -> None:
    # Every training image 32x32: the bins are "below", "exactly 32", "above".
    bins = FeatureBins.fit(np.full(300, 32.0))
    assert bins.psi(np.full(100, 32.0)) == pytest.approx(0.0)
    assert bins.psi(np.concatenate([np.full(90, 32.0), np.full(10, 4000.0)])) > 0.25
    assert bins.psi(np.concatenate([np.full(90, 32.0), np.full(10, 16.0)])) > 0.25


def reference(count: int = 200, sizes: list[tuple[int, int]] | None = None) -> DriftReference:
    rng = np.random.default_rng(3)
    arrays = rng.integers(0, 256, (count, 16, 16, 3), dtype=np.uint8)
    return fit_drift_reference(arrays, sizes or [(32, 32)] * count, rng.random(count))


def test_a_reference_round_trips_through_json(tmp_path: Path) -> None:
    fitted = reference()
    read = DriftReference.read(fitted.write(tmp_path / DRIFT_FILE))
    assert read.features == FEATURES and read.samples == 200
    window = np.random.default_rng(4).random((50, len(FEATURES)))
    assert read.psi(window) == fitted.psi(window)


def test_sizes_that_were_not_recorded_are_left_out() -> None:
    # Manifests that predate native sizes store -1: no size feature can be judged.
    fitted = reference(sizes=[(-1, -1)] * 200)
    assert fitted.features == ("brightness", "saturation", "high_freq", "prob_fake")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format_version=99), "format_version 99"),
        (lambda d: d["features"].update(colour={"edges": [0], "expected": [1, 0]}), "unknown"),
        (lambda d: d["features"]["brightness"].update(expected=[1.0]), "inconsistent bins"),
        (lambda d: d.pop("samples"), "incomplete"),
    ],
)
def test_a_broken_reference_is_a_clear_error(
    tmp_path: Path, edit: Callable[[dict[str, Any]], object], message: str
) -> None:
    data = reference().to_dict()
    edit(data)
    path = tmp_path / DRIFT_FILE
    path.write_text(json.dumps(data))
    with pytest.raises(AidetectorError, match=message):
        DriftReference.read(path)


def model_dir(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_model_dir(
        build_network(**TINY_VIT_SPEC),
        TINY_VIT_SPEC,
        Preprocessing(image_size=32),
        tmp_path / "model",
        ClassOrder(DEFAULT_ORDER),
    )


def test_registration_attaches_the_reference_and_every_copy_carries_it(tmp_path: Path) -> None:
    directory = model_dir(tmp_path)
    assert load_model_dir(directory).drift is None  # saved by training: none yet
    weights_sha = read_model_config(directory)["weights_sha256"]
    section = attach_drift_reference(directory, reference().write(tmp_path / "eval" / DRIFT_FILE))

    config = read_model_config(directory)
    assert config["drift"] == section and section["features"] == list(FEATURES)
    assert config["weights_sha256"] == weights_sha  # the identity is the weights'
    assert DRIFT_FILE in model_files(config)
    loaded = load_model_dir(directory)
    assert loaded.drift is not None and loaded.drift.samples == 200
    fp16 = load_model_dir(convert_model_dir(directory, tmp_path / "fp16", "fp16"))
    assert fp16.drift is not None and fp16.drift.features == FEATURES


def test_a_tampered_reference_refuses_to_load(tmp_path: Path) -> None:
    directory = model_dir(tmp_path)
    attach_drift_reference(directory, reference().write(tmp_path / DRIFT_FILE))
    data = json.loads((directory / DRIFT_FILE).read_text())
    data["samples"] = 1
    (directory / DRIFT_FILE).write_text(json.dumps(data))
    with pytest.raises(AidetectorError, match="sha256 does not match"):
        load_model_dir(directory)
    config = yaml.safe_load((directory / "config.yaml").read_text())
    (directory / DRIFT_FILE).unlink()
    with pytest.raises(AidetectorError, match="missing"):
        load_model_dir(directory)
    assert config["drift"]["file"] == DRIFT_FILE
