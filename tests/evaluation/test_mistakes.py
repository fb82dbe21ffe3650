"""The gallery of the most confident mistakes: which images, in which order, with heatmaps."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aidetector.evaluation.mistakes import most_confident_mistakes
from aidetector.labels import ClassOrder
from aidetector.models.artifact import LoadedModel
from aidetector.models.factory import build_network
from aidetector.preprocessing import Preprocessing

ORDER = ClassOrder(("FAKE", "REAL"))  # label 0 is FAKE: nothing may assume otherwise


def test_the_most_confident_mistakes_come_first_with_the_map_of_their_answer(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    network = build_network(arch="resnet18", img_size=32).eval()
    config = {"precision": "fp32", "class_names": list(ORDER.names), "temperature": 1.0}
    config["network"] = {"arch": "resnet18", "img_size": 32}
    loaded = LoadedModel(network, Preprocessing(image_size=32), config)
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    # The evaluation's numbers, not recomputed: FAKE (label 0) predicted when P(FAKE) >= 0.5.
    labels = np.array([0, 0, 1, 1, 0, 1])
    prob_fake = np.array([0.30, 0.95, 0.99, 0.60, 0.05, 0.20])
    # Wrong: 0 (FAKE as REAL, conf 0.70), 2 (REAL as FAKE, 0.99), 3 (REAL as FAKE, 0.60),
    # 4 (FAKE as REAL, 0.95).
    gallery = most_confident_mistakes(loaded, images, labels, prob_fake, ORDER, count=3)

    assert [m.index for m in gallery.mistakes] == [2, 4, 0]
    assert [(m.truth, m.label) for m in gallery.mistakes] == [
        ("REAL", "FAKE"),
        ("FAKE", "REAL"),
        ("FAKE", "REAL"),
    ]
    assert gallery.layer == "layer2"
    folder = gallery.write(tmp_path)
    index = json.loads((folder / "mistakes.json").read_text())
    assert [m["file"] for m in index["mistakes"]] == [m.file for m in gallery.mistakes]
    assert gallery.mistakes[0].file == "00_REAL_as_FAKE_0.990.png"
    for mistake in gallery.mistakes:
        overlay = Image.open(io.BytesIO((folder / mistake.file).read_bytes()))
        assert overlay.format == "PNG" and overlay.size == (256, 256)
