"""The local engine: DataLoader workers read and decode while the main process scores.

Files are decoded in `workers` DataLoader processes (0: in the main process) and come
back a batch at a time, pixels stacked in shared memory; the main process runs serving's
engine on each batch and appends its rows to the result file before taking the next, so
decoding of later batches overlaps inference, and a killed run loses at most one batch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import fsspec
import fsspec.asyn
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from aidetector.scoring.decode import DecodedFile, FileDecoder
from aidetector.scoring.options import ScoreOptions, ScoreSummary
from aidetector.scoring.scorer import BatchScorer, ModelRef
from aidetector.scoring.writers import open_writer


@dataclass(frozen=True)
class DecodedBatch:
    """A batch of files without pixels, and the stacked inputs of those without an error."""

    files: list[DecodedFile]
    pixels: torch.Tensor


class FileDataset(Dataset[DecodedFile]):
    """The listed files, each decoded when the DataLoader asks for it."""

    def __init__(self, paths: Sequence[str], decoder: FileDecoder) -> None:
        self.paths = list(paths)
        self.decoder = decoder

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> DecodedFile:
        return self.decoder(self.paths[index])


@dataclass(frozen=True)
class CollateDecoded:
    """Stacks a batch's model inputs into one uint8 (N, H, W, 3) tensor (shared memory)."""

    image_size: int

    def __call__(self, files: list[DecodedFile]) -> DecodedBatch:
        arrays = [f.pixels for f in files if f.pixels is not None]
        side = self.image_size
        stacked = np.stack(arrays) if arrays else np.empty((0, side, side, 3), np.uint8)
        return DecodedBatch([f.without_pixels() for f in files], torch.from_numpy(stacked))


def reset_fsspec_after_fork(_: int) -> None:
    """Give a forked DataLoader worker its own fsspec event loop and filesystem instances."""
    fsspec.asyn.reset_lock()
    fsspec.AbstractFileSystem.clear_instance_cache()


def inference_threads(options: ScoreOptions) -> int:
    """Intra-op threads of a CPU forward pass: the cores the decoding workers leave free.

    Threads that outnumber free cores wait on each other at every op: on a shared 2-core
    machine resnet18 at 32 px ran 143 img/s on 2 threads, 1025 on 1 (bulk_score.json).
    """
    return max(1, (os.cpu_count() or 1) - options.workers)


def score_local(
    paths: Sequence[str], model: ModelRef, out: str, options: ScoreOptions
) -> ScoreSummary:
    """Score paths with model into out, skipping what this model version already scored."""
    started = time.perf_counter()
    writer = open_writer(out)
    scorer = BatchScorer(
        model, options.threshold, options.device, options.precision, inference_threads(options)
    )
    decoder = FileDecoder(
        scorer.engine.preprocessing, options.limits, writer.scored(model.name, model.version)
    )
    loader = DataLoader(
        FileDataset(paths, decoder),
        batch_size=options.batch_size,
        num_workers=options.workers,
        collate_fn=CollateDecoded(scorer.image_size),
        worker_init_fn=reset_fsspec_after_fork if options.workers else None,
        prefetch_factor=4 if options.workers else None,
    )
    # One batch of zeros first, as serving does: lazy initialisation is not a batch's cost.
    scorer.engine.warm_up(options.batch_size)
    skipped = scored = errors = 0
    scoring_started = time.perf_counter()
    try:
        with tqdm(
            total=len(paths),
            unit="img",
            desc="scoring",
            disable=not options.progress,
            mininterval=0.5,
            dynamic_ncols=True,
        ) as bar:
            for batch in loader:
                rows = scorer.score(batch.files, batch.pixels.numpy())
                if rows:
                    writer.write(rows)
                failed = sum(1 for row in rows if row["error"] is not None)
                errors += failed
                scored += len(rows) - failed
                skipped += len(batch.files) - len(rows)
                bar.update(len(batch.files))
                bar.set_postfix(errors=errors, skipped=skipped, refresh=False)
    finally:
        writer.close()
    return ScoreSummary(
        out=out,
        model=model,
        precision=scorer.engine.precision,
        listed=len(paths),
        skipped=skipped,
        scored=scored,
        errors=errors,
        seconds=time.perf_counter() - started,
        scoring_seconds=time.perf_counter() - scoring_started,
    )
