"""Flat classification metrics for a binary REAL/FAKE detector.

labels are label indices in the data's order; class_order says which index is FAKE. P(FAKE)
is order-free, so a model and a data set whose orders differ are still scored correctly.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_auroc,
    binary_confusion_matrix,
    binary_f1_score,
    binary_precision,
    binary_recall,
    binary_roc,
)

from aidetector.labels import FAKE, REAL, ClassOrder


def is_fake(labels: np.ndarray, class_order: ClassOrder) -> torch.Tensor:
    """Return 1 where a label is FAKE and 0 where it is REAL, as a long tensor."""
    return torch.as_tensor(np.asarray(labels) == class_order.fake_index, dtype=torch.long)


def classification_metrics(
    labels: np.ndarray, prob_fake: np.ndarray, class_order: ClassOrder, threshold: float = 0.5
) -> dict[str, float]:
    """Return accuracy, per-class precision/recall/F1, ROC-AUC and confusion counts."""
    target = is_fake(labels, class_order)
    scores = torch.as_tensor(prob_fake, dtype=torch.float32)
    predicted = (scores >= threshold).long()
    metrics = {"accuracy": float(binary_accuracy(scores, target, threshold=threshold))}
    # Each class in turn as the positive one: FAKE as it is, REAL with both sides flipped.
    for name, guess, truth in ((FAKE, predicted, target), (REAL, 1 - predicted, 1 - target)):
        suffix = name.lower()
        metrics[f"precision_{suffix}"] = float(binary_precision(guess, truth))
        metrics[f"recall_{suffix}"] = float(binary_recall(guess, truth))
        metrics[f"f1_{suffix}"] = float(binary_f1_score(guess, truth))
    has_both = len(torch.unique(target)) == 2
    metrics["roc_auc"] = float(binary_auroc(scores, target)) if has_both else float("nan")
    (tn, fp), (fn, tp) = binary_confusion_matrix(scores, target, threshold=threshold).tolist()
    metrics.update(
        {"true_real": tn, "false_fake": fp, "false_real": fn, "true_fake": tp, "n": len(target)}
    )
    return metrics


def roc_points(
    labels: np.ndarray, prob_fake: np.ndarray, class_order: ClassOrder
) -> list[dict[str, float]]:
    """Return ROC curve points (fpr, tpr, threshold) with FAKE as the positive class."""
    fpr, tpr, thresholds = binary_roc(
        torch.as_tensor(prob_fake, dtype=torch.float32), is_fake(labels, class_order)
    )
    return [
        {"fpr": float(f), "tpr": float(t), "threshold": float(min(th, 1.0))}
        for f, t, th in zip(fpr, tpr, thresholds, strict=True)
    ]
