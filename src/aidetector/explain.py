"""Explanations of one image's verdict: captum's LayerGradCam, or Saliency for the input.

The map answers "where in the image did the evidence for the predicted class come from".
It is computed on the layer the model directory's config.yaml names (`explain_layer`, see
LoadedModel.explain_layer), for the predicted class (the `label`), through the same
preprocessing, temperature and class order as every prediction (inference.run_batch).

CNNs get Grad-CAM. ViTs get a saliency map (captum's Saliency: |d logit / d pixel|, the
largest over the colour channels) when their explain_layer is `input`, the default: on the
deletion test Grad-CAM on a ViT's tokens was no better than random order on three of four
trained ViTs (models/factory.py: default_explain_layer).

ViTs with a token layer named: LayerGradCam averages the gradients over the dimensions
after the second and sums the activations over the second (the channels), which assumes a
(N, C, h, w) output. A ViT module returns a token sequence (N, T, C), so the
explained module is wrapped in a TokenGrid: its patch tokens (the class token and other
prefix tokens left out) pass through an identity module as a (N, C, h, w) grid, and that
identity is what Grad-CAM attributes to. The values the network computes are unchanged.

Crop mode (preprocessing.py): the verdict is the mean over the image's fixed crops, as in
every prediction, and the map is of its centre crop (Preprocessing.centre_input), for the
class of that averaged verdict.
"""

from __future__ import annotations

import copy
import io
import queue
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam, Saliency
from matplotlib import colormaps
from PIL import Image
from torch import nn

from aidetector.errors import AidetectorError
from aidetector.inference import run_batch
from aidetector.models.artifact import LoadedModel
from aidetector.models.factory import INPUT_LAYER
from aidetector.preprocessing import arrays_to_batch

# Side of the rendered overlay: big enough to see a 32 px input's map cell by cell.
OVERLAY_SIDE = 256
OVERLAY_ALPHA = 0.45
COLORMAP = "jet"
GRAD_CAM, SALIENCY = "grad_cam", "saliency"


class TokenGrid(nn.Module):
    """A ViT module whose patch tokens also pass, unchanged, through `spatial` as a grid.

    `spatial` (an identity) sees (N, C, h, w), which is what LayerGradCam needs; the
    wrapped module's output is returned with the same values and shape as before.
    """

    def __init__(self, inner: nn.Module, prefix_tokens: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.inner = inner
        self.prefix_tokens = prefix_tokens
        self.grid = grid
        self.spatial = nn.Identity()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Run the wrapped module, routing its patch tokens through `spatial`."""
        out: torch.Tensor = self.inner(tokens)
        prefix, patches = out[:, : self.prefix_tokens], out[:, self.prefix_tokens :]
        count, channels = patches.shape[0], patches.shape[2]
        grid = self.spatial(patches.transpose(1, 2).reshape(count, channels, *self.grid))
        return torch.cat([prefix, grid.flatten(2).transpose(1, 2)], dim=1)


@dataclass(frozen=True)
class Explanation:
    """One image's verdict and the Grad-CAM map of its predicted class."""

    prob_fake: float
    domain_score: float
    # The class the map explains: the predicted one, as ClassOrder.label gives it.
    label: str
    layer: str
    # The raw map at the layer's resolution, (h, w) float32, >= 0 (Grad-CAM after its ReLU).
    attribution: np.ndarray
    method: str = GRAD_CAM

    def upsampled(self, side: int) -> np.ndarray:
        """Return the map resized (bilinear) to side x side, as the overlay shows it."""
        grid = torch.from_numpy(self.attribution)[None, None]
        resized = LayerAttribution.interpolate(grid, (side, side), interpolate_mode="bilinear")
        return np.asarray(resized[0, 0].numpy(), dtype=np.float32)


def _attribution_target(network: nn.Module, layer_name: str) -> tuple[nn.Module, nn.Module]:
    """Return (network, module to attribute to), wrapping a ViT's module in a TokenGrid.

    For INPUT_LAYER the module is the network itself: the map is of the input pixels.
    """
    if layer_name == INPUT_LAYER:
        return network, network
    try:
        layer = network.get_submodule(layer_name)
    except AttributeError as error:
        raise AidetectorError(
            f"explain_layer {layer_name!r} is not a module of this network ({error}); "
            f"fix explain_layer in the model's config.yaml or remove it to use the default"
        ) from error
    patch_embed = getattr(network, "patch_embed", None)
    if patch_embed is None:
        return network, layer
    grid = tuple(int(side) for side in patch_embed.grid_size)
    wrapped = TokenGrid(layer, int(getattr(network, "num_prefix_tokens", 1)), (grid[0], grid[1]))
    parent_name, _, attribute = layer_name.rpartition(".")
    setattr(network.get_submodule(parent_name), attribute, wrapped)
    return network, wrapped.spatial


class Explainer:
    """Explains one loaded model's verdicts, from float32 copies of its network.

    One copy per concurrent caller (copies): captum hooks the explained module for the
    length of one call, so two calls must never share a network, and the serving network
    (maybe FP16, shared with the batched predictions) is never touched.
    """

    def __init__(self, loaded: LoadedModel, copies: int = 1, threshold: float = 0.5) -> None:
        if copies < 1:
            raise AidetectorError(f"an Explainer needs at least one network copy, got {copies}")
        self.preprocessing = loaded.preprocessing
        self.class_order = loaded.class_order
        self.temperature = loaded.temperature
        self.domain = loaded.domain
        self.layer = loaded.explain_layer
        self.method = SALIENCY if self.layer == INPUT_LAYER else GRAD_CAM
        self.threshold = threshold
        self.device = next(loaded.network.parameters()).device
        self._pool: queue.SimpleQueue[tuple[nn.Module, nn.Module]] = queue.SimpleQueue()
        for _ in range(copies):
            network = copy.deepcopy(loaded.network).float().eval()
            self._pool.put(_attribution_target(network, self.layer))

    def explain(self, image: np.ndarray) -> Explanation:
        """Return the verdict and Grad-CAM map of its predicted class for one HxWx3 uint8 image.

        The image is a stored square (Preprocessing.image_to_array); in crop mode the map is
        of its centre crop.
        """
        preprocessing = self.preprocessing
        side = preprocessing.array_size
        if image.dtype != np.uint8 or image.shape != (side, side, 3):
            raise AidetectorError(
                f"expected a uint8 ({side}, {side}, 3) image, got {image.dtype} {image.shape}"
            )
        batch = arrays_to_batch(preprocessing.inference_inputs(image[None])).to(self.device)
        explained = arrays_to_batch(preprocessing.centre_input(image)[None]).to(self.device)
        network, layer = self._pool.get()
        try:
            prob, score = run_batch(
                network,
                preprocessing,
                batch,
                self.temperature,
                self.domain,
                fake_index=self.class_order.fake_index,
            )
            prob_fake = float(preprocessing.average_crops(prob.cpu().numpy())[0])
            if score is not None:
                score = torch.from_numpy(preprocessing.average_crops(score.cpu().numpy()))
            label = self.class_order.label(prob_fake, self.threshold)
            temperature = self.temperature

            def calibrated_logits(inputs: torch.Tensor) -> torch.Tensor:
                logits: torch.Tensor = network(inputs)
                return logits.float() / temperature

            target = self.class_order.names.index(label)
            with torch.enable_grad():
                if self.method == SALIENCY:
                    pixels = preprocessing(explained).float().requires_grad_()
                    saliency = Saliency(calibrated_logits).attribute(
                        pixels, target=target, abs=True
                    )
                    attribution = saliency.amax(dim=1, keepdim=True)
                else:
                    cam = LayerGradCam(calibrated_logits, layer)
                    attribution = cam.attribute(
                        preprocessing(explained).float(), target=target, relu_attributions=True
                    )
        finally:
            self._pool.put((network, layer))
        return Explanation(
            prob_fake=prob_fake,
            domain_score=float(score[0]) if score is not None else float("nan"),
            label=label,
            layer=self.layer,
            attribution=attribution[0, 0].detach().float().cpu().numpy(),
            method=self.method,
        )


def render_overlay(image: np.ndarray, explanation: Explanation, side: int = OVERLAY_SIDE) -> bytes:
    """Return a PNG of the map (colormap, scaled to its maximum) over the image, side px square."""
    base = Image.fromarray(image).resize((side, side), Image.Resampling.BICUBIC)
    heat = explanation.upsampled(side)
    peak = float(heat.max())
    scaled = heat / peak if peak > 0 else np.zeros_like(heat)
    colours = (colormaps[COLORMAP](scaled)[..., :3] * 255).astype(np.uint8)
    overlay = Image.blend(base, Image.fromarray(colours), OVERLAY_ALPHA)
    buffer = io.BytesIO()
    overlay.save(buffer, format="PNG")
    return buffer.getvalue()
