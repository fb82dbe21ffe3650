"""The model directory: safetensors + config.yaml round trip, FP16 copies, corruption detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from aidetector.errors import AidetectorError
from aidetector.inference import predict_prob_fake
from aidetector.labels import ClassOrder
from aidetector.models.artifact import load_model_dir, read_model_config, save_model_dir
from aidetector.models.factory import build_network
from aidetector.preprocessing import Preprocessing
from conftest import TINY_VIT_SPEC

SPEC = TINY_VIT_SPEC
ORDER = ClassOrder(("REAL", "FAKE"))


@pytest.fixture
def exported(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    network = build_network(**SPEC).eval()
    preprocessing = Preprocessing(image_size=32, equalize=True)
    save_model_dir(
        network, SPEC, preprocessing, tmp_path / "model", ORDER, metrics={"accuracy": 0.9}
    )
    return network, tmp_path / "model"


def test_round_trip_gives_identical_predictions(exported: tuple[torch.nn.Module, Path]) -> None:
    network, model_dir = exported
    loaded = load_model_dir(model_dir)
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    expected = predict_prob_fake(network, loaded.preprocessing, images, fake_index=1)
    np.testing.assert_array_equal(
        predict_prob_fake(loaded.network, loaded.preprocessing, images, fake_index=1), expected
    )
    assert loaded.preprocessing.equalize is True
    assert loaded.metrics == {"accuracy": 0.9}


def test_cnn_loads_channels_last_and_predicts_like_the_trained_network(tmp_path: Path) -> None:
    spec = {"name": "resnet18", "family": "cnn", "arch": "resnet18", "img_size": 32}
    torch.manual_seed(0)
    network = build_network(**spec).eval()
    save_model_dir(network, spec, Preprocessing(image_size=32), tmp_path / "cnn", ORDER)
    loaded = load_model_dir(tmp_path / "cnn")
    weight = loaded.network.conv1.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    images = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(
        predict_prob_fake(loaded.network, loaded.preprocessing, images, fake_index=1),
        predict_prob_fake(network, loaded.preprocessing, images, fake_index=1),
        atol=1e-5,
    )
    # A loaded network saves again (safetensors needs contiguous tensors).
    save_model_dir(loaded.network, spec, loaded.preprocessing, tmp_path / "again", ORDER)
    assert load_model_dir(tmp_path / "again").config["weights_sha256"]


def test_directory_holds_no_pickle(exported: tuple[torch.nn.Module, Path]) -> None:
    _, model_dir = exported
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "config.yaml",
        "metrics.json",
        "model.safetensors",
    ]
    config = read_model_config(model_dir)
    assert config["class_names"] == ["REAL", "FAKE"]
    assert config["network"]["arch"] == "vit_tiny_patch16_224"


def test_fp16_copy_stores_half_weights_and_stays_close(
    tmp_path: Path, exported: tuple[torch.nn.Module, Path]
) -> None:
    network, _ = exported
    save_model_dir(
        network, SPEC, Preprocessing(image_size=32), tmp_path / "fp16", ORDER, precision="fp16"
    )
    loaded = load_model_dir(tmp_path / "fp16")
    assert loaded.precision == "fp16"
    assert next(loaded.network.parameters()).dtype == torch.float16
    images = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    fp32 = predict_prob_fake(network, Preprocessing(image_size=32), images, fake_index=1)
    fp16 = predict_prob_fake(loaded.network, loaded.preprocessing, images, fake_index=1)
    np.testing.assert_allclose(fp16, fp32, atol=5e-3)


def test_corrupt_weights_are_rejected(exported: tuple[torch.nn.Module, Path]) -> None:
    _, model_dir = exported
    weights = model_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(AidetectorError, match="corrupt"):
        load_model_dir(model_dir)


def test_missing_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AidetectorError, match=r"config\.yaml is missing"):
        load_model_dir(tmp_path)


def test_config_records_the_explained_layer(exported: tuple[torch.nn.Module, Path]) -> None:
    _, model_dir = exported
    assert read_model_config(model_dir)["explain_layer"] == "input"  # a ViT: input saliency
    assert load_model_dir(model_dir).explain_layer == "input"


def test_a_directory_saved_before_explanations_gets_the_family_default(
    exported: tuple[torch.nn.Module, Path],
) -> None:
    _, model_dir = exported
    config = read_model_config(model_dir)
    del config["explain_layer"]
    (model_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert load_model_dir(model_dir).explain_layer == "input"


def test_an_explain_layer_that_is_not_a_module_is_refused_at_save(tmp_path: Path) -> None:
    network = build_network(**SPEC)
    with pytest.raises(AidetectorError, match=r"explain_layer 'blocks\.99' is not a module"):
        save_model_dir(
            network, SPEC, Preprocessing(32), tmp_path / "m", ORDER, explain_layer="blocks.99"
        )


def test_a_conv_stem_vit_round_trips_and_records_its_stem(tmp_path: Path) -> None:
    spec = {**SPEC, "conv_stem": True}
    torch.manual_seed(0)
    network = build_network(**spec).eval()
    save_model_dir(network, spec, Preprocessing(image_size=32), tmp_path / "stem", ORDER)
    assert read_model_config(tmp_path / "stem")["network"]["conv_stem"] is True
    loaded = load_model_dir(tmp_path / "stem")
    images = np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        predict_prob_fake(loaded.network, loaded.preprocessing, images, fake_index=1),
        predict_prob_fake(network, loaded.preprocessing, images, fake_index=1),
    )
