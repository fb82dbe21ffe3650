"""Grad-CAM explanations: the predicted class, the prediction path's numbers, a viewable PNG."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aidetector.errors import AidetectorError
from aidetector.explain import OVERLAY_SIDE, Explainer, TokenGrid, render_overlay
from aidetector.inference import model_prob_fake
from aidetector.labels import ClassOrder
from aidetector.models.artifact import LoadedModel, load_model_dir, save_model_dir
from aidetector.models.factory import build_network
from aidetector.preprocessing import Preprocessing, arrays_to_batch
from conftest import TINY_VIT_SPEC

CNN_SPEC = {"name": "resnet18", "family": "cnn", "arch": "resnet18", "img_size": 32}
# FAKE first: an explainer that assumed "FAKE is 1" would explain the wrong class.
ORDER = ClassOrder(("FAKE", "REAL"))
# (spec, the raw map's shape, method): resnet18 at 32 px explains layer2 (4x4) with Grad-CAM,
# the ViT its 32x32 input pixels with a saliency map.
FAMILIES = {
    "cnn": (CNN_SPEC, (4, 4), "grad_cam"),
    "vit": (TINY_VIT_SPEC, (32, 32), "saliency"),
}


def saved(tmp_path: Path, spec: dict[str, object], explain_layer: str | None = None) -> LoadedModel:
    torch.manual_seed(0)
    network = build_network(**spec).eval()
    model_dir = tmp_path / str(spec["name"])
    save_model_dir(
        network,
        spec,
        Preprocessing(32),
        model_dir,
        ORDER,
        temperature=1.7,
        explain_layer=explain_layer,
    )
    return load_model_dir(model_dir)


def noise(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_map_explains_the_predicted_class_with_the_prediction_paths_numbers(
    family: str, tmp_path: Path
) -> None:
    spec, shape, method = FAMILIES[family]
    loaded = saved(tmp_path, spec)
    explainer = Explainer(loaded, threshold=0.5)
    images = np.stack([noise(seed) for seed in range(6)])
    offline = model_prob_fake(loaded, images)
    for image, prob_fake in zip(images, offline, strict=True):
        explanation = explainer.explain(image)
        assert explanation.prob_fake == pytest.approx(float(prob_fake), abs=1e-5)
        assert explanation.label == ("FAKE" if prob_fake >= 0.5 else "REAL")
        assert explanation.layer == loaded.explain_layer and explanation.method == method
        assert explanation.attribution.shape == shape
        assert (explanation.attribution >= 0).all() and explanation.attribution.max() > 0


def test_the_token_grid_leaves_the_vits_outputs_unchanged(tmp_path: Path) -> None:
    # A model directory may still name a token layer for Grad-CAM (saved before saliency).
    loaded = saved(tmp_path, TINY_VIT_SPEC, explain_layer="blocks.11.norm1")
    explainer = Explainer(loaded)
    wrapped, _ = explainer._pool.get()  # the copy the next explanation would use
    assert isinstance(wrapped.get_submodule(loaded.explain_layer), TokenGrid)
    assert not isinstance(loaded.network.get_submodule(loaded.explain_layer), TokenGrid)
    inputs = loaded.preprocessing(arrays_to_batch(np.stack([noise(1), noise(2)])))
    with torch.no_grad():
        torch.testing.assert_close(wrapped(inputs), loaded.network(inputs))


def test_the_overlay_is_a_png_at_a_viewable_size(tmp_path: Path) -> None:
    loaded = saved(tmp_path, CNN_SPEC)
    image = noise(3)
    png = render_overlay(image, Explainer(loaded).explain(image))
    overlay = Image.open(io.BytesIO(png))
    assert overlay.format == "PNG" and overlay.size == (OVERLAY_SIDE, OVERLAY_SIDE)
    assert overlay.mode == "RGB"


def test_an_image_of_the_wrong_size_is_a_clear_error(tmp_path: Path) -> None:
    explainer = Explainer(saved(tmp_path, CNN_SPEC))
    with pytest.raises(AidetectorError, match=r"expected a uint8 \(32, 32, 3\) image"):
        explainer.explain(np.zeros((64, 64, 3), dtype=np.uint8))
