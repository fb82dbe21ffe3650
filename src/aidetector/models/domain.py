"""The training domain of a model, and whether an input lies inside it.

Recorded at training time and kept in the model directory (domain.safetensors plus the
`domain` section of config.yaml), so it travels with the weights through the registry:

* feature statistics at two depths of the network, each modelled as class-conditional
  Gaussians with one shared covariance (Ledoit-Wolf shrinkage); an input's distance is its
  Mahalanobis distance to the nearest class mean (Lee et al. 2018):
  - `low_level`: the channel means and standard deviations of the first feature maps, which
    describe colour, noise and texture (what a new camera or generator changes first);
  - `penultimate`: the features the classifier reads;
  each probe's threshold is a high percentile of the validation distances, and the input's
  domain score is the largest distance / threshold ratio (above 1 is out of domain);
* native image sizes: the smallest and largest side seen in training. A model trained on
  32 px thumbnails has never seen what a 4000 px photo looks like after downscaling.

An input outside either is answered UNCERTAIN rather than with a confident guess.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from aidetector.errors import AidetectorError
from aidetector.models.files import checked_section_file, file_sha256

DOMAIN_FILE = "domain.safetensors"
PROBES: tuple[str, ...] = ("low_level", "penultimate")


@dataclass(frozen=True)
class DomainCheck:
    """Whether one input lies in the training domain; if not, why (a sentence) and which test.

    reason_kind is "size" or "features" when out of domain (a metric label), else None.
    """

    in_domain: bool
    reason: str | None = None
    reason_kind: Literal["size", "features"] | None = None


IN_DOMAIN = DomainCheck(True)


@dataclass(frozen=True)
class SizeRange:
    """Native image sides seen in training; sides within [min / t, max * t] are in domain."""

    min_side: int  # -1 if unknown
    max_side: int
    tolerance: float = 2.0

    def check(self, width: int | None, height: int | None) -> DomainCheck:
        """Return whether an image of this native size is in domain (unknown sizes pass)."""
        if width is None or height is None or self.min_side <= 0:
            return IN_DOMAIN
        small, large = min(width, height), max(width, height)
        if self.min_side / self.tolerance <= small and large <= self.max_side * self.tolerance:
            return IN_DOMAIN
        seen = (
            f"{self.min_side} px"
            if self.min_side == self.max_side
            else f"{self.min_side} to {self.max_side} px"
        )
        return DomainCheck(
            False,
            f"The image is {width}x{height} px, but the model was trained on images with "
            f"sides of {seen}.",
            "size",
        )


class FeatureGaussian:
    """Class means, shared precision and distance threshold of one feature probe."""

    def __init__(self, class_means: torch.Tensor, precision: torch.Tensor, threshold: float):
        self.class_means = class_means.float()
        self.precision = precision.float()
        self.threshold = float(threshold)

    def to(self, device: str | torch.device) -> FeatureGaussian:
        """Return the probe with its tensors on device (always float32)."""
        return FeatureGaussian(
            self.class_means.to(device), self.precision.to(device), self.threshold
        )

    def distance(self, features: torch.Tensor) -> torch.Tensor:
        """Return the Mahalanobis distance of each feature row to its nearest class mean."""
        features = features.float()
        squared = []
        for mean in self.class_means:
            centred = features - mean
            squared.append(((centred @ self.precision) * centred).sum(dim=1))
        return torch.stack(squared, dim=1).min(dim=1).values.clamp(min=0).sqrt()

    @classmethod
    def fit(
        cls,
        train: np.ndarray,
        labels: np.ndarray,
        val: np.ndarray,
        percentile: float,
    ) -> FeatureGaussian:
        """Fit class means and a shrunk shared covariance; threshold at a val percentile."""
        # Imported here: only training fits profiles, and the serving image has no sklearn.
        from sklearn.covariance import LedoitWolf

        features = np.asarray(train, dtype=np.float64)
        classes = np.unique(labels)
        means = np.stack([features[labels == c].mean(axis=0) for c in classes])
        centred = features - means[np.searchsorted(classes, labels)]
        # Shrinkage: with few images per feature dimension the plain covariance is singular
        # (the demo has ~1,100 training images for 512 features).
        precision = LedoitWolf(assume_centered=True).fit(centred).precision_
        probe = cls(torch.from_numpy(means), torch.from_numpy(precision), math.inf)
        val_distance = probe.distance(torch.from_numpy(np.asarray(val, dtype=np.float32)))
        probe.threshold = float(np.percentile(val_distance.numpy(), percentile))
        return probe


class DomainProfile:
    """Feature probes and native sizes of the training data; judges one input at a time."""

    def __init__(
        self, probes: Mapping[str, FeatureGaussian], sizes: SizeRange, percentile: float
    ) -> None:
        self.probes = dict(probes)
        self.sizes = sizes
        self.percentile = float(percentile)

    def to(self, device: str | torch.device) -> DomainProfile:
        """Return the profile with its tensors on device."""
        probes = {name: probe.to(device) for name, probe in self.probes.items()}
        return DomainProfile(probes, self.sizes, self.percentile)

    def score(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Return each input's domain score: the largest distance / threshold over probes."""
        ratios = [
            probe.distance(features[name]) / max(probe.threshold, 1e-12)
            for name, probe in self.probes.items()
        ]
        return torch.stack(ratios, dim=1).max(dim=1).values

    def check(self, score: float, width: int | None, height: int | None) -> DomainCheck:
        """Return whether an input with this domain score and native size is in domain."""
        by_size = self.sizes.check(width, height)
        if not by_size.in_domain:
            return by_size
        if not math.isfinite(score) or score > 1.0:
            return DomainCheck(
                False,
                f"The image is unlike the training data: its features are {score:.1f} times "
                f"as far from the training images as the {self.percentile:g}th percentile "
                f"of validation images.",
                "features",
            )
        return IN_DOMAIN

    def save(self, model_dir: Path) -> dict[str, Any]:
        """Write domain.safetensors into model_dir; return config.yaml's `domain` section."""
        path = Path(model_dir) / DOMAIN_FILE
        tensors = {}
        for name, probe in self.probes.items():
            tensors[f"{name}.class_means"] = probe.class_means.detach().cpu().contiguous()
            tensors[f"{name}.precision"] = probe.precision.detach().cpu().contiguous()
        save_file(tensors, str(path))
        sha256 = file_sha256(path)
        return {
            "file": DOMAIN_FILE,
            "sha256": sha256,
            "percentile": self.percentile,
            "min_side": self.sizes.min_side,
            "max_side": self.sizes.max_side,
            "size_tolerance": self.sizes.tolerance,
            "probes": {
                name: {"threshold": probe.threshold, "feature_dim": int(probe.precision.shape[0])}
                for name, probe in self.probes.items()
            },
        }

    @classmethod
    def load(cls, model_dir: Path, section: dict[str, Any]) -> DomainProfile:
        """Read the profile that config.yaml's `domain` section describes."""
        path = checked_section_file(model_dir, section, DOMAIN_FILE, "domain")
        tensors = load_file(str(path))
        try:
            probes = {
                name: FeatureGaussian(
                    tensors[f"{name}.class_means"],
                    tensors[f"{name}.precision"],
                    float(values["threshold"]),
                )
                for name, values in dict(section["probes"]).items()
            }
            sizes = SizeRange(
                int(section["min_side"]),
                int(section["max_side"]),
                float(section["size_tolerance"]),
            )
            return cls(probes, sizes, float(section["percentile"]))
        except (KeyError, TypeError, ValueError) as error:
            raise AidetectorError(
                f"{model_dir}: config.yaml's domain section is incomplete ({error}); "
                "re-train or re-export the model"
            ) from error


def fit_domain_profile(
    train_features: Mapping[str, np.ndarray],
    train_labels: np.ndarray,
    val_features: Mapping[str, np.ndarray],
    native_sides: tuple[int, int],
    percentile: float = 99.0,
    size_tolerance: float = 2.0,
) -> DomainProfile:
    """Fit one Gaussian probe per feature set; about (100 - percentile)% of in-domain images
    exceed each probe's threshold."""
    labels = np.asarray(train_labels)
    if len(np.unique(labels)) < 2 or any(len(v) == 0 for v in val_features.values()):
        raise AidetectorError("fitting the domain profile needs both classes and validation data")
    probes = {
        name: FeatureGaussian.fit(train_features[name], labels, val_features[name], percentile)
        for name in train_features
    }
    sizes = SizeRange(int(native_sides[0]), int(native_sides[1]), float(size_tolerance))
    return DomainProfile(probes, sizes, percentile)
