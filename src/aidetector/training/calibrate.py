"""After training: fit the softmax temperature and the domain profile on the prepared splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aidetector.data.prepared import load_split, read_split_meta
from aidetector.evaluation.calibration import expected_calibration_error, fit_temperature
from aidetector.inference import collect_features_and_logits
from aidetector.labels import ClassOrder
from aidetector.models.domain import DomainProfile, fit_domain_profile
from aidetector.preprocessing import Preprocessing


@dataclass(frozen=True)
class CalibrationSettings:
    """How the temperature and the domain profile are fitted (config: CalibrationConfig)."""

    domain_percentile: float = 99.0
    size_tolerance: float = 2.0
    max_train_images: int = 5000
    seed: int = 0


@dataclass(frozen=True)
class Calibration:
    """The fitted temperature and domain profile, with validation figures before and after."""

    temperature: float
    domain: DomainProfile
    metrics: dict[str, float]


def native_side_range(prepared_dir: Path) -> tuple[int, int]:
    """Return (smallest, largest) native image side of the training split; (-1, -1) if unknown."""
    meta = read_split_meta(prepared_dir, "train")
    known = (meta.widths > 0) & (meta.heights > 0)
    if not known.any():
        return -1, -1
    widths, heights = meta.widths[known], meta.heights[known]
    return int(np.minimum(widths, heights).min()), int(np.maximum(widths, heights).max())


def calibrate(
    network: nn.Module,
    preprocessing: Preprocessing,
    prepared_dir: Path,
    settings: CalibrationSettings,
    class_order: ClassOrder,
    batch_size: int = 256,
) -> Calibration:
    """Fit temperature on validation logits and the domain profile on training features.

    In crop mode both are fitted per crop (each crop carries its image's label), as
    inference computes them before averaging over an image's crops.
    """
    train_images, train_labels = load_split(prepared_dir, "train")
    if len(train_labels) > settings.max_train_images:
        rng = np.random.default_rng(settings.seed)
        keep = np.sort(rng.choice(len(train_labels), settings.max_train_images, replace=False))
        train_images, train_labels = train_images[keep], train_labels[keep]
    val_images, val_labels = load_split(prepared_dir, "val")
    was_training = network.training
    train_features, _ = collect_features_and_logits(
        network, preprocessing, train_images, batch_size
    )
    val_features, val_logits = collect_features_and_logits(
        network, preprocessing, val_images, batch_size
    )
    network.train(was_training)
    crops = preprocessing.crops_per_image
    train_labels, val_labels = np.repeat(train_labels, crops), np.repeat(val_labels, crops)
    temperature = fit_temperature(val_logits, torch.from_numpy(val_labels))
    fake = class_order.fake_index
    before = val_logits.softmax(dim=1)[:, fake].numpy()
    after = (val_logits / temperature).softmax(dim=1)[:, fake].numpy()
    domain = fit_domain_profile(
        train_features,
        train_labels,
        val_features,
        native_side_range(prepared_dir),
        percentile=settings.domain_percentile,
        size_tolerance=settings.size_tolerance,
    )
    labels = torch.from_numpy(val_labels)
    nll = torch.nn.functional.cross_entropy
    metrics = {
        "calibration/temperature": temperature,
        "calibration/val_nll_uncalibrated": float(nll(val_logits, labels)),
        "calibration/val_nll": float(nll(val_logits / temperature, labels)),
        "calibration/val_ece_uncalibrated": expected_calibration_error(
            val_labels, before, fake_index=fake
        ),
        "calibration/val_ece": expected_calibration_error(val_labels, after, fake_index=fake),
        **{
            f"calibration/{name}_threshold": probe.threshold
            for name, probe in domain.probes.items()
        },
    }
    return Calibration(temperature, domain, metrics)
