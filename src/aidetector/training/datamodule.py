"""LightningDataModule over the decoded uint8 cache written by the prepare stage.

In crop mode (preprocessing.py) the cache holds native-resolution squares larger than the
network's input: training takes a random crop_size crop of each per sample and epoch, and
the validation and test loaders the centre crop. Those are Lightning's own val/test figures
(checkpointing, early stopping); the evaluate stage averages the fixed inference crops.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from aidetector.data.prepared import load_split


class RandomRot90(torch.nn.Module):
    """Rotate a CHW image by a random multiple of 90 degrees: lossless, unlike arbitrary angles."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        turns = int(torch.randint(0, 4, ()).item())
        return torch.rot90(image, turns, dims=(-2, -1)) if turns else image


class CachedImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """Serves (uint8 CHW tensor, label) pairs from the cached arrays; no JPEG decoding."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: v2.Transform | None):
        self.images = images
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(np.array(self.images[index])).permute(2, 0, 1)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


class DetectorDataModule(pl.LightningDataModule):
    """Train/val/test loaders of uint8 images; the model normalises them (shared preprocessing)."""

    def __init__(
        self,
        prepared_dir: str | Path,
        batch_size: int = 128,
        num_workers: int = 0,
        hflip: bool = True,
        rot90: bool = True,
        rotation_degrees: float = 0.0,
        preprocessing_mode: str = "resize",
        crop_size: int = 0,
    ) -> None:
        super().__init__()
        self.prepared_dir = Path(prepared_dir)
        self.batch_size = batch_size
        self.num_workers = num_workers
        augmentations: list[v2.Transform] = []
        self.eval_transform: v2.Transform | None = None
        if preprocessing_mode == "crop":
            if crop_size < 1:
                raise ValueError(f"crop mode needs a crop_size of at least 1, got {crop_size}")
            # First, so that flips and turns work on the network's input, not the whole square.
            augmentations.append(v2.RandomCrop(crop_size))
            self.eval_transform = v2.CenterCrop(crop_size)
        if hflip:
            augmentations.append(v2.RandomHorizontalFlip())
        if rot90:
            augmentations.append(RandomRot90())
        if rotation_degrees > 0:
            # Interpolation blurs exactly the high frequencies that separate REAL from FAKE.
            augmentations.append(v2.RandomRotation(rotation_degrees))
        self.train_transform = v2.Compose(augmentations) if augmentations else None
        self.splits: dict[str, CachedImageDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val", "test"):
            if split not in self.splits:
                images, labels = load_split(self.prepared_dir, split)
                transform = self.train_transform if split == "train" else self.eval_transform
                self.splits[split] = CachedImageDataset(images, labels, transform)

    def train_labels(self) -> np.ndarray:
        """Return the training labels (for class weights)."""
        self.setup("fit")
        return np.asarray(self.splits["train"].labels)

    def _loader(self, split: str, shuffle: bool) -> DataLoader[tuple[torch.Tensor, int]]:
        return DataLoader(
            self.splits[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader[tuple[torch.Tensor, int]]:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader[tuple[torch.Tensor, int]]:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader[tuple[torch.Tensor, int]]:
        return self._loader("test", shuffle=False)
