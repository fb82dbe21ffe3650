"""Crop mode end to end on full-resolution demo images: prepare, train, export, evaluate.

The demo images are 64 px (demo.image_size), the network takes 32 px crops: prepare keeps
each image whole at native resolution, training takes random crops, and evaluation averages
the five fixed crops (centre and corners) of each image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from aidetector.cli import cmd_demo_data, cmd_prepare
from aidetector.config.schema import RunConfig
from aidetector.data.prepared import load_split, read_manifest, read_split_meta
from aidetector.errors import AidetectorError
from aidetector.evaluation.evaluate import evaluate_from_config
from aidetector.inference import predict_outputs, run_batch
from aidetector.models.artifact import load_model_dir
from aidetector.preprocessing import arrays_to_batch, crop_offsets
from aidetector.training.outputs import write_training_outputs
from aidetector.training.train import train
from conftest import tiny_config

NATIVE = 64
CROP_MODE = (
    "experiment=demo_crop",
    "model=resnet18",
    f"demo.image_size={NATIVE}",
    f"data.store_size={NATIVE}",
    "demo.n_per_class=24",
    "evaluate.suite.variants=[]",
)


def crop_config(root: Path, *overrides: str) -> RunConfig:
    return tiny_config(root, *CROP_MODE, *overrides)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunConfig, Path]:
    """Demo images at 64 px, prepared in crop mode, and resnet18 trained one epoch on them."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("crop")
    cfg = crop_config(root)
    cmd_demo_data(cfg, argparse.Namespace())
    cmd_prepare(cfg, argparse.Namespace())
    model_dir = write_training_outputs(train(cfg, "resnet18"), cfg)
    return cfg, model_dir


def test_prepare_keeps_full_resolution_pixels(trained: tuple[RunConfig, Path]) -> None:
    cfg, _ = trained
    manifest = read_manifest(cfg.paths.prepared)
    assert manifest["image_size"] == NATIVE and manifest["preprocessing_mode"] == "crop"
    images, _ = load_split(cfg.paths.prepared, "train")
    assert images.shape[1:] == (NATIVE, NATIVE, 3)
    source = read_split_meta(cfg.paths.prepared, "train").sources[0]
    decoded = np.asarray(Image.open(cfg.data.root / source).convert("RGB"))
    # Not resampled: the stored square is the decoded file, pixel for pixel.
    np.testing.assert_array_equal(images[0], decoded)


def test_config_yaml_records_the_mode_and_the_crops(trained: tuple[RunConfig, Path]) -> None:
    _, model_dir = trained
    section = yaml.safe_load((model_dir / "config.yaml").read_text())["preprocessing"]
    assert section["mode"] == "crop"
    assert (section["image_size"], section["store_size"], section["inference_crops"]) == (
        32,
        NATIVE,
        5,
    )
    loaded = load_model_dir(model_dir)
    assert loaded.preprocessing.crops_per_image == 5


def test_evaluation_averages_five_fixed_crops(trained: tuple[RunConfig, Path]) -> None:
    cfg, model_dir = trained
    loaded = load_model_dir(model_dir)
    images, _ = load_split(cfg.paths.prepared, "test")
    seen: list[tuple[int, ...]] = []
    hook = loaded.network.register_forward_pre_hook(
        lambda _module, args: seen.append(tuple(args[0].shape))
    )
    try:
        outputs = predict_outputs(
            loaded.network,
            loaded.preprocessing,
            images,
            batch_size=20,  # 4 images (20 crops) per forward pass
            temperature=loaded.temperature,
            domain=None,
            fake_index=loaded.class_order.fake_index,
        )
    finally:
        hook.remove()
    assert sum(shape[0] for shape in seen) == 5 * len(images)
    assert {shape[1:] for shape in seen} == {(3, 32, 32)}
    assert outputs.prob_fake.shape == (len(images),)
    # The same figure by hand: each fixed crop on its own, then the mean of the probabilities.
    per_crop = []
    for top, left in crop_offsets(NATIVE, 32, 5):
        crops = np.ascontiguousarray(images[:, top : top + 32, left : left + 32])
        prob, _ = run_batch(
            loaded.network,
            loaded.preprocessing,
            arrays_to_batch(crops),
            loaded.temperature,
            fake_index=loaded.class_order.fake_index,
        )
        per_crop.append(prob.numpy())
    np.testing.assert_allclose(outputs.prob_fake, np.mean(per_crop, axis=0), atol=1e-6)
    assert np.ptp(np.stack(per_crop), axis=0).max() > 0  # the crops do disagree


def test_the_evaluate_stage_runs_in_crop_mode(trained: tuple[RunConfig, Path]) -> None:
    cfg, _ = trained
    result = evaluate_from_config(cfg, "resnet18")
    assert len(result.prob_fake) == len(load_split(cfg.paths.prepared, "test")[1])
    assert 0.0 <= result.metrics["accuracy"] <= 1.0
    assert result.metrics["latency_ms_mean"] > 0


def test_training_refuses_data_prepared_in_the_other_mode(
    trained: tuple[RunConfig, Path],
) -> None:
    cfg, _ = trained
    resize = tiny_config(
        cfg.paths.prepared.parent, "model=resnet18", f"paths.prepared={cfg.paths.prepared}"
    )
    with pytest.raises(AidetectorError, match="prepared in crop mode, but data says 32 px"):
        train(resize, "resnet18")
