"""How faithful explanations are: the deletion test (Petsiuk et al. 2018, "RISE").

Pixels are removed from an image, most attributed first, and the probability of the
predicted class is read after each step. A map that points at what the model uses makes
it fall faster than removing the same number of pixels in random order; the area under
each curve (probability against the fraction removed) summarises it, lower is faster.
An explanation whose area is no lower than random explains nothing.

"Removed" means set to the image's per-channel median: a colour already in the image,
so removal neither adds an edge of black nor brightens a dark image.

A known-answer task checks the explainer itself (tests and benchmarks/explain_faithfulness.py):
FAKE images carry a bright square on dark noise, REAL ones do not, so the evidence sits in
one place that a faithful map must find.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aidetector.explain import Explainer
from aidetector.inference import model_prob_fake
from aidetector.labels import FAKE, REAL, ClassOrder
from aidetector.models.artifact import LoadedModel, load_model_dir, save_model_dir
from aidetector.models.factory import build_network
from aidetector.preprocessing import Preprocessing, arrays_to_batch

DEFAULT_STEPS = 16


@dataclass(frozen=True)
class DeletionScores:
    """Mean deletion areas over the images (lower: the probability falls faster)."""

    attributed_auc: float
    random_auc: float
    images: int
    steps: int

    @property
    def gain(self) -> float:
        """random_auc - attributed_auc: how much faster the map removes the evidence."""
        return self.random_auc - self.attributed_auc

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict for JSON reports."""
        return {**asdict(self), "gain": self.gain}


def deletion_curve(
    loaded: LoadedModel, image: np.ndarray, order: np.ndarray, label: str, steps: int
) -> np.ndarray:
    """Return P(label) after removing 0, 1/steps, ..., all of the pixels in `order`'s order.

    order holds flat pixel indices (row-major over the image's H x W); the probabilities
    come from the one prediction path (calibrated, in the model's class order).
    """
    height, width, _ = image.shape
    baseline = np.median(image.reshape(-1, 3), axis=0).astype(np.uint8)
    variants = np.repeat(image[None], steps + 1, axis=0)
    for step in range(1, steps + 1):
        removed = order[: round(step / steps * height * width)]
        flat = variants[step].reshape(-1, 3)
        flat[removed] = baseline
    prob_fake = model_prob_fake(loaded, variants)
    return np.asarray(prob_fake if label == FAKE else 1.0 - prob_fake, dtype=np.float64)


def curve_area(curve: np.ndarray) -> float:
    """Return the area under a curve sampled at evenly spaced fractions from 0 to 1."""
    return float(np.trapezoid(curve, dx=1.0 / (len(curve) - 1)))


def deletion_scores(
    loaded: LoadedModel,
    explainer: Explainer,
    images: Sequence[np.ndarray],
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
) -> DeletionScores:
    """Return the mean deletion areas, map order against random order, over the images."""
    rng = np.random.default_rng(seed)
    attributed, random = [], []
    for image in images:
        explanation = explainer.explain(image)
        side = image.shape[0]
        heat = explanation.upsampled(side).ravel()
        # Stable sort: ties (a flat map) fall back to reading order, never to a lucky order.
        order = np.argsort(-heat, kind="stable")
        shuffled = rng.permutation(side * side)
        label = explanation.label
        attributed.append(curve_area(deletion_curve(loaded, image, order, label, steps)))
        random.append(curve_area(deletion_curve(loaded, image, shuffled, label, steps)))
    return DeletionScores(float(np.mean(attributed)), float(np.mean(random)), len(images), steps)


def bright_square_images(
    count: int, side: int = 32, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return (uint8 (count, side, side, 3) images, labels 1 = FAKE): half carry a square.

    Every image is dark noise; a FAKE one has a bright square of side/4 px somewhere.
    """
    rng = np.random.default_rng(seed)
    images = np.clip(rng.normal(60.0, 25.0, (count, side, side, 3)), 0, 255)
    labels = np.arange(count) % 2
    square = side // 4
    for index in np.flatnonzero(labels):
        top, left = rng.integers(0, side - square + 1, size=2)
        images[index, top : top + square, left : left + square] = rng.normal(
            220.0, 15.0, (square, square, 3)
        )
    return np.clip(images, 0, 255).astype(np.uint8), labels


def fit_reference_model(
    spec: dict[str, Any], out_dir: Path, steps: int = 120, batch_size: int = 32, seed: int = 0
) -> LoadedModel:
    """Train spec's network on bright_square_images, save it as a model directory, load it.

    Labels are in the order (REAL, FAKE); the inputs go through the shared Preprocessing.
    """
    torch.manual_seed(seed)
    side = int(spec["img_size"])
    preprocessing = Preprocessing(image_size=side)
    images, labels = bright_square_images(steps * batch_size // 4, side, seed)
    network = build_network(**spec)
    optimiser = torch.optim.AdamW(network.parameters(), lr=1e-3)
    network.train()
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        chosen = rng.choice(len(images), batch_size, replace=False)
        logits = network(preprocessing(arrays_to_batch(images[chosen])))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels[chosen]))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    save_model_dir(network.eval(), spec, preprocessing, out_dir, ClassOrder((REAL, FAKE)))
    return load_model_dir(out_dir)
