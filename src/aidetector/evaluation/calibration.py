"""Calibration: temperature scaling (Guo et al. 2017), ECE, Brier score and reliability bins.

ECE here is the top-label expected calibration error with 10 equal-width confidence bins:
the confidence of a verdict is max(P(FAKE), P(REAL)), the accuracy is whether it was right.
labels are label indices in the data's order, and fake_index is the data's FAKE index.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics.functional.classification import multiclass_calibration_error

ECE_BINS = 10
# Temperatures outside this range mean the fit went wrong (or the logits are degenerate).
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 200) -> float:
    """Return the scalar T minimising the NLL of softmax(logits / T) on held-out data."""
    logits = logits.detach().float().cpu().clone()  # may come from inference mode
    labels = labels.detach().long().cpu().clone()
    if len(labels) == 0:
        return 1.0
    # Optimise log T so that T stays positive; start from T = 1 (no change).
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")
    loss_fn = torch.nn.CrossEntropyLoss()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss: torch.Tensor = loss_fn(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature):
        return 1.0
    return min(max(temperature, MIN_TEMPERATURE), MAX_TEMPERATURE)


def two_class_probs(prob_fake: np.ndarray, fake_index: int) -> torch.Tensor:
    """Return (N, 2) class probabilities from P(FAKE), with FAKE at fake_index."""
    fake = torch.as_tensor(np.asarray(prob_fake, dtype=np.float32))
    columns = [1.0 - fake, fake] if fake_index == 1 else [fake, 1.0 - fake]
    return torch.stack(columns, dim=1)


def expected_calibration_error(
    labels: np.ndarray, prob_fake: np.ndarray, *, fake_index: int, n_bins: int = ECE_BINS
) -> float:
    """Return the top-label ECE (L1, equal-width confidence bins) of P(FAKE) against labels."""
    if len(labels) == 0:
        return float("nan")
    return float(
        multiclass_calibration_error(
            two_class_probs(prob_fake, fake_index),
            torch.as_tensor(np.asarray(labels), dtype=torch.long),
            num_classes=2,
            n_bins=n_bins,
            norm="l1",
        )
    )


def brier_score(labels: np.ndarray, prob_fake: np.ndarray, *, fake_index: int) -> float:
    """Return the mean squared error of P(FAKE) against the 0/1 FAKE indicator."""
    if len(labels) == 0:
        return float("nan")
    is_fake = (np.asarray(labels) == fake_index).astype(np.float64)
    return float(np.mean((np.asarray(prob_fake, dtype=np.float64) - is_fake) ** 2))


def confidence_bin_index(confidence: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """Return each confidence's equal-width bin over [0, 1], as torchmetrics' ECE bins it."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)


def reliability_bins(
    labels: np.ndarray, prob_fake: np.ndarray, *, fake_index: int, n_bins: int = ECE_BINS
) -> list[dict[str, float]]:
    """Return one row per non-empty confidence bin: mean confidence, accuracy and count."""
    prob_fake = np.asarray(prob_fake, dtype=np.float64)
    predicted = np.where(prob_fake >= 0.5, fake_index, 1 - fake_index)
    confidence = np.maximum(prob_fake, 1.0 - prob_fake)
    correct = (predicted == np.asarray(labels)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = confidence_bin_index(confidence, n_bins)
    rows = []
    for index in range(n_bins):
        members = which == index
        if not members.any():
            continue
        rows.append(
            {
                "bin_lower": float(edges[index]),
                "bin_upper": float(edges[index + 1]),
                "confidence": float(confidence[members].mean()),
                "accuracy": float(correct[members].mean()),
                "count": int(members.sum()),
            }
        )
    return rows
