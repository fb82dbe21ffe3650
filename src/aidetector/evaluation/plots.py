"""Plot data for `dvc plots show` (CSV) and PNG figures a person can open."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from aidetector.labels import ClassOrder


def write_rows_csv(rows: Sequence[Mapping[str, object]], path: Path) -> None:
    """Write dict rows as CSV with the first row's keys as header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)


def confusion_rows(
    labels: np.ndarray, predicted: np.ndarray, class_order: ClassOrder
) -> list[dict[str, object]]:
    """Return one (actual, predicted) class-name row per sample: DVC's confusion template input."""
    names = class_order.names
    return [
        {"actual": names[int(a)], "predicted": names[int(p)]}
        for a, p in zip(labels, predicted, strict=True)
    ]


def save_confusion_png(
    labels: np.ndarray, predicted: np.ndarray, class_order: ClassOrder, path: Path, title: str
) -> None:
    """Save a labelled confusion-matrix heat map; labels and predicted are label indices."""
    matrix = np.zeros((2, 2), dtype=int)
    for actual, guess in zip(labels, predicted, strict=True):
        matrix[int(actual), int(guess)] += 1
    figure, axes = plt.subplots(figsize=(4, 4))
    axes.imshow(matrix, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        axes.text(col, row, str(count), ha="center", va="center", color=color)
    names = class_order.as_list()
    axes.set(xticks=[0, 1], yticks=[0, 1], xticklabels=names, yticklabels=names)
    axes.set(xlabel="predicted", ylabel="actual", title=title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def save_roc_png(points: list[dict[str, float]], auc: float, path: Path, title: str) -> None:
    """Save the ROC curve with its AUC."""
    figure, axes = plt.subplots(figsize=(4, 4))
    axes.plot([p["fpr"] for p in points], [p["tpr"] for p in points], label=f"AUC {auc:.3f}")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey")
    axes.set(xlabel="false positive rate", ylabel="true positive rate (FAKE)", title=title)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def save_history_png(history_csv: Path, path: Path, title: str) -> None:
    """Save loss and accuracy curves from a training history CSV."""
    with history_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    figure, (loss_axes, score_axes) = plt.subplots(1, 2, figsize=(8, 3.5))
    epochs = [float(r["epoch"]) for r in rows]
    for key, axes in (("loss", loss_axes), ("acc", score_axes), ("f1_fake", score_axes)):
        for stage in ("train", "val"):
            column = f"{stage}/{key}"
            if rows and column in rows[0]:
                values = [float(r[column]) if r[column] else np.nan for r in rows]
                axes.plot(epochs, values, marker="o", label=column)
    loss_axes.set(xlabel="epoch", title="loss")
    score_axes.set(xlabel="epoch", title="accuracy / F1 (FAKE)")
    for axes in (loss_axes, score_axes):
        axes.legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def save_reliability_png(bins: list[dict[str, float]], ece: float, path: Path, title: str) -> None:
    """Save a reliability diagram: accuracy against mean confidence per bin, with counts."""
    figure, axes = plt.subplots(figsize=(4, 4))
    axes.plot([0.5, 1.0], [0.5, 1.0], linestyle="--", color="grey", label="perfect")
    if bins:
        axes.plot(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            marker="o",
            label=f"model (ECE {ece:.3f})",
        )
        for row in bins:
            axes.annotate(str(int(row["count"])), (row["confidence"], row["accuracy"]), fontsize=6)
    axes.set(xlabel="confidence", ylabel="accuracy", title=title, xlim=(0.45, 1.02))
    axes.set_ylim(0.0, 1.02)
    axes.legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
