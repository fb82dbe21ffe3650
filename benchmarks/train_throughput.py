"""Training throughput: the project's Lightning loop against a plain PyTorch loop.

Same network, batch size, data, augmentation, optimizer and thread count; both loops
time the same number of optimizer steps after the same warm-up. Writes JSON.

    python benchmarks/train_throughput.py [--model resnet18] [--steps 60] [--data PREPARED_DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from torch import nn

from aidetector.config.loading import compose_config
from aidetector.config.schema import RunConfig
from aidetector.data.demo import generate_demo_dataset
from aidetector.data.ingest import ingest_image_folder
from aidetector.data.prepared import write_prepared
from aidetector.data.splits import SplitRatios
from aidetector.labels import ClassOrder
from aidetector.training.datamodule import DetectorDataModule
from aidetector.training.module import DetectorModule

RESULTS = Path(__file__).parent / "results" / "train_throughput.json"


class StepTimer(pl.Callback):
    """Times optimizer steps after `warmup` batches."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start = 0.0
        self.elapsed = 0.0
        self.images = 0

    def on_train_batch_start(
        self, trainer: pl.Trainer, module: pl.LightningModule, batch, batch_idx: int
    ) -> None:
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if batch_idx >= self.warmup:
            self.images += len(batch[1])
            self.elapsed = time.perf_counter() - self.start


def build_module(cfg: RunConfig, model_name: str) -> DetectorModule:
    torch.manual_seed(0)
    return instantiate(cfg.module.instantiate_args(), _partial_=True)(
        net=instantiate(cfg.model_spec(model_name).instantiate_args()),
        preprocessing=cfg.data.preprocessing(),
        class_order=ClassOrder.from_names(cfg.data.classes),
        optimizer=instantiate(cfg.optimizer.instantiate_args()),
        scheduler=None,
    )


def lightning_loop(
    cfg: RunConfig, model_name: str, datamodule: DetectorDataModule, steps: int, warmup: int
) -> dict[str, float]:
    timer = StepTimer(warmup)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        limit_train_batches=steps + warmup,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=True,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(build_module(cfg, model_name), datamodule=datamodule)
    return {
        "images_per_s": timer.images / timer.elapsed,
        "seconds": timer.elapsed,
        "images": timer.images,
    }


def plain_loop(
    cfg: RunConfig, model_name: str, datamodule: DetectorDataModule, steps: int, warmup: int
) -> dict[str, float]:
    module = build_module(cfg, model_name)
    network, preprocessing = module.net, module.preprocessing
    optimizer = module.optimizer_factory(params=network.parameters())
    loss_fn = nn.CrossEntropyLoss()
    network.train()
    images_seen, start = 0, 0.0
    for index, (images, labels) in enumerate(datamodule.train_dataloader()):
        if index == warmup:
            start = time.perf_counter()
        if index >= steps + warmup:
            break
        loss = loss_fn(network(preprocessing(images)), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if index >= warmup:
            images_seen += len(labels)
    elapsed = time.perf_counter() - start
    return {"images_per_s": images_seen / elapsed, "seconds": elapsed, "images": images_seen}


def loader_only(datamodule: DetectorDataModule, steps: int) -> dict[str, float]:
    start, images = time.perf_counter(), 0
    for index, (batch, _) in enumerate(datamodule.train_dataloader()):
        if index >= steps:
            break
        images += len(batch)
    elapsed = time.perf_counter() - start
    return {"images_per_s": images / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--data", type=Path, help="a prepared dir (default: generated demo data)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    cfg = compose_config([f"model={args.model}"])
    with tempfile.TemporaryDirectory() as scratch:
        prepared = args.data
        if prepared is None:
            raw, prepared = Path(scratch) / "raw", Path(scratch) / "prepared"
            generate_demo_dataset(raw, 5000, 32, seed=0)
            write_prepared(
                ingest_image_folder(raw, 32, SplitRatios(0.9, 0.05, 0.05), seed=0), prepared
            )
        datamodule = instantiate(
            cfg.datamodule.instantiate_args(), prepared_dir=prepared, batch_size=args.batch_size
        )
        datamodule.setup("fit")
        needed = (args.steps + args.warmup) * args.batch_size
        if len(datamodule.splits["train"]) < needed:
            raise SystemExit(f"need {needed} training images for {args.steps} steps")
        loader = loader_only(datamodule, args.steps)
        plain = plain_loop(cfg, args.model, datamodule, args.steps, args.warmup)
        lightning = lightning_loop(cfg, args.model, datamodule, args.steps, args.warmup)
    result = {
        "benchmark": "train_throughput",
        "model": args.model,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "image_size": cfg.data.image_size,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "plain_pytorch_images_per_s": round(plain["images_per_s"], 1),
        "lightning_images_per_s": round(lightning["images_per_s"], 1),
        "lightning_over_plain": round(lightning["images_per_s"] / plain["images_per_s"], 3),
        "dataloader_only_images_per_s": round(loader["images_per_s"], 1),
        "dataloader_over_training": round(loader["images_per_s"] / plain["images_per_s"], 1),
        "target_lightning_over_plain": 0.95,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
