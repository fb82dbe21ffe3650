"""Batched inference on uint8 images, shared by evaluation, the registry check and serving.

One forward pass gives both the calibrated P(FAKE) (logits divided by the model's fitted
temperature) and the features that the domain check measures (its score: above 1 is out
of domain). fake_index, the column of P(FAKE), is the model's label order
(LoadedModel.class_order): it is always passed, never assumed.

In crop mode (preprocessing.py) every image is inference_crops network inputs: P(FAKE) is
the mean of the crops' calibrated probabilities (softmax of logits / temperature, then the
mean), and the domain score the mean of the crops' scores. The temperature and the domain
profile are fitted on per-crop outputs (training/calibrate.py).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from aidetector.models.domain import DomainProfile
from aidetector.preprocessing import Preprocessing, arrays_to_batch

if TYPE_CHECKING:
    from aidetector.models.artifact import LoadedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outputs:
    """Per-image results of one batch: calibrated P(FAKE) and the domain score (or NaN)."""

    prob_fake: np.ndarray
    distance: np.ndarray


def probe_features(
    network: nn.Module, inputs: torch.Tensor
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Return (the domain probes' features, logits) of a timm classifier in one forward pass.

    `low_level`: channel means and standard deviations of the first feature maps (the
    ResNet stem, the ViT's first block); `penultimate`: what the classifier reads.
    """
    # timm's classifier methods: nn.Module types unknown attributes as `Tensor | Module`.
    final, (first,) = network.forward_intermediates(inputs, indices=[0])  # type: ignore[operator]
    first = first.float()
    low_level = torch.cat([first.mean(dim=(2, 3)), first.std(dim=(2, 3), correction=0)], dim=1)
    penultimate = network.forward_head(final, pre_logits=True)  # type: ignore[operator]
    logits = network.get_classifier()(penultimate)  # type: ignore[operator]
    return {"low_level": low_level, "penultimate": penultimate}, logits


@torch.inference_mode()
def run_batch(
    network: nn.Module,
    preprocessing: Preprocessing,
    batch: torch.Tensor,
    temperature: float = 1.0,
    domain: DomainProfile | None = None,
    *,
    fake_index: int,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return (calibrated P(FAKE) as float32, domain score or None) for a uint8 NCHW batch."""
    parameter = next(network.parameters())
    inputs = preprocessing(batch.to(parameter.device)).to(parameter.dtype)
    if domain is None:
        logits = network(inputs)
        distance = None
    else:
        features, logits = probe_features(network, inputs)
        distance = domain.score(features)
    prob_fake = (logits.float() / temperature).softmax(dim=1)[:, fake_index]
    return prob_fake, distance


def predict_outputs(
    network: nn.Module,
    preprocessing: Preprocessing,
    images: np.ndarray,
    batch_size: int = 256,
    temperature: float = 1.0,
    domain: DomainProfile | None = None,
    *,
    fake_index: int,
) -> Outputs:
    """Return P(FAKE) and feature distances for every HxWx3 uint8 image in images, in order.

    In crop mode each image's fixed crops are averaged; batch_size counts network inputs.
    """
    network.eval()
    probs: list[torch.Tensor] = []
    distances: list[torch.Tensor] = []
    step = max(1, batch_size // preprocessing.crops_per_image)
    for start in range(0, len(images), step):
        batch = arrays_to_batch(preprocessing.inference_inputs(images[start : start + step]))
        prob_fake, distance = run_batch(
            network, preprocessing, batch, temperature, domain, fake_index=fake_index
        )
        probs.append(prob_fake.cpu())
        distances.append(
            distance.cpu() if distance is not None else torch.full_like(prob_fake.cpu(), np.nan)
        )
    if not probs:
        empty = np.empty(0, dtype=np.float32)
        return Outputs(empty, empty.copy())
    return Outputs(
        preprocessing.average_crops(torch.cat(probs).numpy()),
        preprocessing.average_crops(torch.cat(distances).float().numpy()),
    )


def predict_prob_fake(
    network: nn.Module,
    preprocessing: Preprocessing,
    images: np.ndarray,
    batch_size: int = 256,
    temperature: float = 1.0,
    *,
    fake_index: int,
) -> np.ndarray:
    """Return calibrated P(FAKE) for every HxWx3 uint8 image in images, in order."""
    outputs = predict_outputs(
        network, preprocessing, images, batch_size, temperature, fake_index=fake_index
    )
    return outputs.prob_fake


def model_prob_fake(loaded: LoadedModel, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Return a loaded model's calibrated P(FAKE) for HxWx3 uint8 images, through its own order."""
    return predict_prob_fake(
        loaded.network,
        loaded.preprocessing,
        images,
        batch_size,
        loaded.temperature,
        fake_index=loaded.class_order.fake_index,
    )


@torch.inference_mode()
def collect_features_and_logits(
    network: nn.Module, preprocessing: Preprocessing, images: np.ndarray, batch_size: int = 256
) -> tuple[dict[str, np.ndarray], torch.Tensor]:
    """Return (float32 probe features by name, float32 logits) for images: calibration's input.

    One row per network input: in crop mode, crops_per_image consecutive rows per image.
    """
    network.eval()
    parameter = next(network.parameters())
    features: dict[str, list[torch.Tensor]] = {}
    logits: list[torch.Tensor] = []
    step = max(1, batch_size // preprocessing.crops_per_image)
    for start in range(0, len(images), step):
        inputs = preprocessing.inference_inputs(images[start : start + step])
        batch = arrays_to_batch(inputs).to(parameter.device)
        probes, out = probe_features(network, preprocessing(batch).to(parameter.dtype))
        for name, values in probes.items():
            features.setdefault(name, []).append(values.float().cpu())
        logits.append(out.float().cpu())
    return {name: torch.cat(parts).numpy() for name, parts in features.items()}, torch.cat(logits)


def fp16_copy(network: nn.Module) -> nn.Module:
    """Return a half-precision copy of network (weights rounded to FP16)."""
    return copy.deepcopy(network).half().eval()


def round_to_fp16(network: nn.Module) -> nn.Module:
    """Return an FP32 copy of network that computes as GPU FP16 inference does.

    The weights are rounded to FP16, and the input and every layer's output are rounded to
    FP16 (values past FP16's range become inf, as they would on the GPU), while each layer's
    arithmetic runs in FP32, as GPU FP16 kernels accumulate. A CPU has no fast FP16 kernels:
    a pure-FP16 pass of the demo's ViT ran several times slower than this.
    """
    rounded = fp16_copy(network).float()

    def round_output(_module: nn.Module, _inputs: object, output: object) -> object:
        return output.half().float() if isinstance(output, torch.Tensor) else output

    def round_input(_module: nn.Module, inputs: tuple[object, ...]) -> tuple[object, ...]:
        return tuple(x.half().float() if isinstance(x, torch.Tensor) else x for x in inputs)

    rounded.register_forward_pre_hook(round_input)
    for module in rounded.modules():
        if next(module.children(), None) is None:  # leaves: the layers that compute
            module.register_forward_hook(round_output)
    return rounded


def predict_fp16(
    network: nn.Module,
    preprocessing: Preprocessing,
    images: np.ndarray,
    batch_size: int,
    temperature: float = 1.0,
    *,
    fake_index: int,
) -> np.ndarray:
    """Return P(FAKE) at FP16 precision: an FP16 copy on a GPU, its FP16 rounding on a CPU."""
    device = next(network.parameters()).device.type
    half = fp16_copy(network) if device == "cuda" else round_to_fp16(network)
    return predict_prob_fake(
        half, preprocessing, images, batch_size, temperature, fake_index=fake_index
    )
