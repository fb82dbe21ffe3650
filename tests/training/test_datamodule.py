"""The data module serves cached uint8 images; augmentation never interpolates pixels."""

from __future__ import annotations

import torch

from aidetector.training.datamodule import RandomRot90


def test_rot90_only_permutes_pixels() -> None:
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    turned = [RandomRot90()(image) for _ in range(20)]
    assert all(
        torch.equal(t.flatten().sort().values, image.flatten().sort().values) for t in turned
    )
    assert len({t.flatten().tolist().__repr__() for t in turned}) > 1
