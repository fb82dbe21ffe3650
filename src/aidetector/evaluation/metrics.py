"""Flat classification metrics for a binary REAL/FAKE detector."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.classification import (
    binary_accuracy,
    binary_auroc,
    binary_confusion_matrix,
    binary_roc,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from aidetector import CLASS_NAMES


def classification_metrics(
    labels: np.ndarray, prob_fake: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """Return accuracy, per-class precision/recall/F1, ROC-AUC and confusion counts."""
    target = torch.as_tensor(labels, dtype=torch.long)
    scores = torch.as_tensor(prob_fake, dtype=torch.float32)
    predicted = (scores >= threshold).long()
    per_class = {
        "precision": multiclass_precision(predicted, target, num_classes=2, average=None),
        "recall": multiclass_recall(predicted, target, num_classes=2, average=None),
        "f1": multiclass_f1_score(predicted, target, num_classes=2, average=None),
    }
    metrics = {"accuracy": float(binary_accuracy(scores, target, threshold=threshold))}
    for index, class_name in enumerate(CLASS_NAMES):
        for name, values in per_class.items():
            metrics[f"{name}_{class_name.lower()}"] = float(values[index])
    has_both = len(torch.unique(target)) == 2
    metrics["roc_auc"] = float(binary_auroc(scores, target)) if has_both else float("nan")
    (tn, fp), (fn, tp) = binary_confusion_matrix(scores, target, threshold=threshold).tolist()
    metrics.update(
        {"true_real": tn, "false_fake": fp, "false_real": fn, "true_fake": tp, "n": len(target)}
    )
    return metrics


def roc_points(labels: np.ndarray, prob_fake: np.ndarray) -> list[dict[str, float]]:
    """Return ROC curve points (fpr, tpr, threshold) with FAKE as the positive class."""
    fpr, tpr, thresholds = binary_roc(
        torch.as_tensor(prob_fake, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.long)
    )
    return [
        {"fpr": float(f), "tpr": float(t), "threshold": float(min(th, 1.0))}
        for f, t, th in zip(fpr, tpr, thresholds, strict=True)
    ]
