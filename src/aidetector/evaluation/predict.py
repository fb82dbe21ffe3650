"""Batched inference on uint8 images, shared by evaluation, the registry check and serving."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from aidetector.preprocessing import Preprocessing, arrays_to_batch

FAKE = 1


@torch.inference_mode()
def predict_prob_fake_batch(
    network: nn.Module, preprocessing: Preprocessing, batch: torch.Tensor
) -> torch.Tensor:
    """Return P(FAKE) as float32 for a uint8 (N, 3, H, W) batch, in the network's dtype/device."""
    parameter = next(network.parameters())
    inputs = preprocessing(batch.to(parameter.device)).to(parameter.dtype)
    return network(inputs).float().softmax(dim=1)[:, FAKE]


def predict_prob_fake(
    network: nn.Module,
    preprocessing: Preprocessing,
    images: np.ndarray,
    batch_size: int = 256,
) -> np.ndarray:
    """Return P(FAKE) for every HxWx3 uint8 image in images, in order."""
    network.eval()
    outputs = [
        predict_prob_fake_batch(network, preprocessing, arrays_to_batch(images[i : i + batch_size]))
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(outputs).cpu().numpy() if outputs else np.empty(0, dtype=np.float32)
