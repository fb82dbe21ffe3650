"""The loaded model at serving time: the network on its device, FP16 on CUDA, FP32 on CPU.

It also judges whether an input lies in the model's training domain, from the domain score
the forward pass returns and the native size of the upload.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aidetector.inference import run_batch
from aidetector.labels import ClassOrder
from aidetector.models.artifact import (
    LoadedModel,
    file_sha256,
    load_model_dir,
    verified_weights_path,
)
from aidetector.models.domain import IN_DOMAIN, DomainCheck
from aidetector.preprocessing import Preprocessing, arrays_to_batch
from aidetector.serving.cache import ModelKey


@dataclass(frozen=True)
class ModelIdentity:
    """What the service tells clients about the model that answered."""

    name: str
    version: str
    readable_name: str
    precision: str
    # The label order of the model directory's config.yaml, which the verdicts go through.
    class_order: ClassOrder
    # Of the weights that were loaded: part of every cache key.
    weights_sha256: str
    registered_accuracy: float | None = None

    @property
    def model_key(self) -> ModelKey:
        """What this model's cached verdicts are keyed by."""
        return ModelKey(self.name, self.version, self.weights_sha256)

    def as_response(self) -> dict[str, str]:
        """The `model` object of a prediction response."""
        return {
            "name": self.name,
            "version": self.version,
            "readable_name": self.readable_name,
            "precision": self.precision,
        }


def choose_device(device: str) -> str:
    """Resolve `auto` to cuda when a GPU is present, else cpu."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def choose_dtype(device: str, precision: str) -> torch.dtype:
    """FP16 on CUDA and FP32 on the CPU for `auto`; CPUs lack fast FP16 kernels."""
    if precision == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return {"fp16": torch.float16, "fp32": torch.float32}[precision]


class InferenceEngine:
    """Runs batched P(FAKE) on uint8 NHWC arrays through the offline evaluation code path."""

    def __init__(
        self, model_dir: Path, device: str = "auto", precision: str = "auto", cpu_threads: int = 0
    ) -> None:
        self.device = choose_device(device)
        self.dtype = choose_dtype(self.device, precision)
        if self.device == "cpu" and cpu_threads > 0:
            torch.set_num_threads(cpu_threads)
        self.loaded: LoadedModel = load_model_dir(model_dir, device=self.device, dtype=self.dtype)
        # config.yaml's sha256 was checked against the file by the load; older directories
        # without one get theirs computed.
        self.weights_sha256 = str(
            self.loaded.config.get("weights_sha256")
            or file_sha256(verified_weights_path(model_dir, self.loaded.config))
        )

    @property
    def preprocessing(self) -> Preprocessing:
        """The preprocessing recorded in the model's config.yaml."""
        return self.loaded.preprocessing

    @property
    def precision(self) -> str:
        """The precision that actually runs: fp16 or fp32."""
        return "fp16" if self.dtype == torch.float16 else "fp32"

    @property
    def image_size(self) -> int:
        """Side of the square uint8 input the network takes."""
        return self.preprocessing.image_size

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Return float32 (N, 2) for a uint8 (N, H, W, 3) array, in order.

        Column 0 is the calibrated P(FAKE); column 1 the domain score (above 1 is out of the
        training domain), NaN when the model carries no domain profile.
        """
        batch = arrays_to_batch(images)
        prob_fake, domain_score = run_batch(
            self.loaded.network,
            self.preprocessing,
            batch,
            self.loaded.temperature,
            self.loaded.domain,
            fake_index=self.loaded.class_order.fake_index,
        )
        if domain_score is None:
            domain_score = torch.full_like(prob_fake, float("nan"))
        return torch.stack([prob_fake.float(), domain_score.float()], dim=1).cpu().numpy()

    def check_domain(self, score: float, width: int | None, height: int | None) -> DomainCheck:
        """Return whether an input with this domain score and native size is in domain.

        Always in domain for a model saved without a profile: there is nothing to compare to.
        """
        domain = self.loaded.domain
        return IN_DOMAIN if domain is None else domain.check(score, width, height)

    def warm_up(self, batch_size: int) -> None:
        """Run one full-size batch so the first request pays no lazy initialisation."""
        size = self.image_size
        self.predict(np.zeros((batch_size, size, size, 3), dtype=np.uint8))
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()


def identity_from_labels(
    labels: dict[str, str],
    metadata: dict[str, Any],
    fallback_name: str,
    precision: str,
    class_order: ClassOrder,
    weights_sha256: str,
) -> ModelIdentity:
    """Build the identity from the BentoML model's labels and metadata (see package.py)."""
    metrics = metadata.get("metrics") or {}
    accuracy = metrics.get("accuracy")
    return ModelIdentity(
        name=labels.get("registered_model", fallback_name),
        version=labels.get("registry_version", "unknown"),
        readable_name=labels.get("readable_name", ""),
        precision=precision,
        class_order=class_order,
        weights_sha256=weights_sha256,
        registered_accuracy=float(accuracy) if accuracy is not None else None,
    )
