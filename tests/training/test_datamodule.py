"""The data module serves cached uint8 images; augmentation never interpolates pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aidetector.data.prepared import IngestReport, PreparedDataset, SplitData, write_prepared
from aidetector.training.datamodule import DetectorDataModule, RandomRot90


def test_rot90_only_permutes_pixels() -> None:
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    turned = [RandomRot90()(image) for _ in range(20)]
    assert all(
        torch.equal(t.flatten().sort().values, image.flatten().sort().values) for t in turned
    )
    assert len({t.flatten().tolist().__repr__() for t in turned}) > 1


def test_crop_mode_trains_on_random_crops_and_validates_on_the_centre(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    splits = {
        split: SplitData(
            images=rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8),
            labels=np.array([0, 1], dtype=np.int64),
            hashes=[f"{split}{i}" for i in range(2)],
            sources=[f"{split}{i}.png" for i in range(2)],
        )
        for split in ("train", "val", "test")
    }
    counts = {s: {"REAL": 1, "FAKE": 1} for s in splits}
    names = ["REAL", "FAKE"]
    report = IngestReport("root", 16, names, {}, {}, {}, 0, 0, 0, 0, counts, False, 0, {})
    dataset = PreparedDataset(splits, ("REAL", "FAKE"), 16, report, mode="crop")
    write_prepared(dataset, tmp_path)
    module = DetectorDataModule(
        tmp_path, hflip=False, rot90=False, preprocessing_mode="crop", crop_size=8
    )
    module.setup("fit")
    train_crops = {module.splits["train"][0][0].numpy().tobytes() for _ in range(20)}
    assert len(train_crops) > 1  # a new crop each time the sample is drawn
    val_image, _ = module.splits["val"][0]
    assert tuple(val_image.shape) == (3, 8, 8)
    centre = splits["val"].images[0, 4:12, 4:12]
    np.testing.assert_array_equal(val_image.permute(1, 2, 0).numpy(), centre)
