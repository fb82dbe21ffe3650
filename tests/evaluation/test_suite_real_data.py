"""A CIFAKE-trained model on the whole suite: calibrated, and UNCERTAIN outside its domain.

Real data: 3,000 CIFAKE images train a resnet18 in a few CPU-seconds per epoch. The suite adds
../shared/data/xsource (full-resolution photos and generator images) and the project's own
synthetic demo data as extra sets: neither looks like CIFAKE, so most of each must be flagged,
while at most 5% of CIFAKE's own test split is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from aidetector.cli import cmd_prepare, cmd_prepare_set
from aidetector.data.demo import generate_demo_dataset
from aidetector.evaluation.scoring import score_model
from aidetector.evaluation.suite import load_suite_from_config
from aidetector.models.artifact import load_model_dir
from aidetector.training.outputs import write_training_outputs
from aidetector.training.train import train
from conftest import CIFAKE_TRAIN, copy_cifake_sample, tiny_config

XSOURCE = CIFAKE_TRAIN.parents[1] / "xsource"
PER_CLASS = 1500

pytestmark = pytest.mark.real_data


def test_cifake_model_flags_other_sources_but_not_its_own_test_split(tmp_path: Path) -> None:
    if not CIFAKE_TRAIN.is_dir() or not XSOURCE.is_dir():
        pytest.skip(f"real data not present at {CIFAKE_TRAIN.parent} (only on dev/CI machines)")
    copy_cifake_sample(tmp_path / "images", PER_CLASS)
    generate_demo_dataset(tmp_path / "demo", n_per_class=100, image_size=32, seed=3)
    cfg = tiny_config(
        tmp_path,
        "data=folder",
        f"data.root={tmp_path}/images",
        "model=resnet18",
        "trainer.max_epochs=3",
        "datamodule.batch_size=64",
        "datamodule.rot90=false",
        f"paths.suite={tmp_path}/suite",
        f"+evaluate.suite.sets.xsource.root={XSOURCE}",
        f"+evaluate.suite.sets.demo.root={tmp_path}/demo",
    )
    cmd_prepare(cfg, argparse.Namespace())
    cmd_prepare_set(cfg, argparse.Namespace(name=None))
    result = train(cfg, "resnet18")
    assert result.calibration is not None
    calibration = result.calibration.metrics
    # Temperature scaling minimises the validation NLL (T = 1 is one of its candidates).
    assert calibration["calibration/val_nll"] <= calibration["calibration/val_nll_uncalibrated"]

    model_dir = write_training_outputs(result, cfg)
    loaded = load_model_dir(model_dir, dtype=torch.float32)
    scores = score_model(loaded, load_suite_from_config(cfg), latency_samples=2, latency_warmup=1)
    rows = scores.rows

    assert rows["test"]["roc_auc"] > 0.8
    assert rows["test"]["flagged"] <= 0.05
    # xsource: every image is far larger than CIFAKE's 32 px; the demo data is 32 px but unlike
    # CIFAKE's content and traces, so only the features can tell.
    assert rows["xsource"]["flagged"] >= 0.9
    assert rows["demo"]["flagged"] > 0.5
    assert rows["xsource"]["n"] == 100
    # Temperature scaling changes confidence, never the verdict.
    assert scores.model["temperature"] == pytest.approx(result.calibration.temperature)
