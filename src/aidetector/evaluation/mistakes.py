"""The most confident mistakes on the test split, each with the heatmap of its wrong answer.

A model that is wrong and sure of it is where an explanation pays: the map shows what the
model took as evidence for the class it wrongly chose. The evaluate stage writes them to
reports/eval/NAME/png/mistakes/ (one PNG overlay each and mistakes.json), a DVC output of
the stage that MLflow receives with the rest of the evaluation.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from aidetector.explain import Explainer, render_overlay
from aidetector.labels import ClassOrder
from aidetector.models.artifact import LoadedModel

# How many mistakes the gallery shows: enough to see a pattern, few enough to look at.
MISTAKES_SHOWN = 16
MISTAKES_DIR = "mistakes"


@dataclass(frozen=True)
class Mistake:
    """One wrongly classified test image, its confidence and its overlay file."""

    index: int
    truth: str
    label: str
    prob_fake: float
    confidence: float
    file: str


@dataclass(frozen=True)
class MistakeGallery:
    """The mistakes, most confident first, with their PNG overlays (same order)."""

    mistakes: list[Mistake]
    overlays: list[bytes]
    layer: str

    def write(self, out_dir: Path) -> Path:
        """Write mistakes/NN_*.png and mistakes/mistakes.json under out_dir; return the folder."""
        folder = out_dir / MISTAKES_DIR
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.png"):
            stale.unlink()  # a gallery from an earlier run must not linger beside this one
        for mistake, png in zip(self.mistakes, self.overlays, strict=True):
            (folder / mistake.file).write_bytes(png)
        index = {
            "explained": "each map is of the class the model wrongly chose (Grad-CAM)",
            "layer": self.layer,
            "mistakes": [asdict(mistake) for mistake in self.mistakes],
        }
        (folder / "mistakes.json").write_text(json.dumps(index, indent=2) + "\n")
        return folder


def most_confident_mistakes(
    loaded: LoadedModel,
    images: np.ndarray,
    labels: np.ndarray,
    prob_fake: np.ndarray,
    order: ClassOrder,
    count: int = MISTAKES_SHOWN,
    threshold: float = 0.5,
) -> MistakeGallery:
    """Return the count most confident wrong predictions with the heatmap of each answer.

    labels are label indices in `order`; prob_fake is the calibrated P(FAKE) of the same
    images, as the evaluation computed it.
    """
    predicted = np.where(prob_fake >= threshold, order.fake_index, order.real_index)
    confidence = np.maximum(prob_fake, 1.0 - prob_fake)
    wrong = np.flatnonzero(predicted != labels)
    chosen = wrong[np.argsort(-confidence[wrong], kind="stable")][:count]
    explainer = Explainer(loaded, threshold=threshold)
    mistakes, overlays = [], []
    for rank, index in enumerate(chosen.tolist()):
        truth, label = order.names[int(labels[index])], order.names[int(predicted[index])]
        explanation = explainer.explain(images[index])
        mistakes.append(
            Mistake(
                index=index,
                truth=truth,
                label=label,
                prob_fake=float(prob_fake[index]),
                confidence=float(confidence[index]),
                file=f"{rank:02d}_{truth}_as_{label}_{confidence[index]:.3f}.png",
            )
        )
        shown = loaded.preprocessing.centre_input(images[index])  # the pixels the map covers
        overlays.append(render_overlay(shown, explanation))
    return MistakeGallery(mistakes, overlays, explainer.layer)
