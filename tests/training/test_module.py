"""DetectorModule options that change how the network runs, not what it computes."""

from __future__ import annotations

import torch

from aidetector.labels import ClassOrder
from aidetector.models.factory import build_network
from aidetector.preprocessing import Preprocessing
from aidetector.training.module import DetectorModule


def _module(channels_last: bool) -> DetectorModule:
    torch.manual_seed(0)
    return DetectorModule(
        net=build_network(arch="resnet18", img_size=32).eval(),
        preprocessing=Preprocessing(image_size=32),
        class_order=ClassOrder(("REAL", "FAKE")),
        optimizer=torch.optim.SGD,
        channels_last=channels_last,
    )


def test_channels_last_changes_the_memory_layout_not_the_logits() -> None:
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    plain, nhwc = _module(False), _module(True)
    nhwc.on_fit_start()
    assert nhwc.net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain.net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(nhwc(images), plain(images), rtol=1e-4, atol=1e-5)
