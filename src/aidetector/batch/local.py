"""The local engine: DataLoader workers read and decode while inference streams score.

Files are decoded in `workers` DataLoader processes (0: in the main process) and come
back a batch at a time, pixels stacked in one array. Each batch goes whole to one of
`streams` inference threads running serving's engine; the main process appends the
batches' rows to the result file in order, each as soon as it and those before it are
done. Decoding of later batches overlaps inference, and a killed run loses at most the
batches in flight: one per stream.

On the CPU a small model's forward pass scales badly across intra-op threads (each op
waits for the slowest thread), and well across streams, each a whole forward on its own
core: resnet18 at 32 px ran ~1,200 img/s on 1 thread, ~1,300-2,000 on 2, and ~2,000-2,400
as 2 streams of 1 thread on 2 cores (benchmarks/results/bulk_score.json). So the CPU gets
one stream per core up to MAX_CPU_STREAMS, and the cores that leaves as intra-op threads;
a GPU gets one stream.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import fsspec
import fsspec.asyn
import numpy as np
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from aidetector.batch.decode import DecodedFile, FileDecoder
from aidetector.batch.options import ScoreOptions, ScoreSummary
from aidetector.batch.scorer import BatchScorer, ModelRef, Row
from aidetector.batch.writers import open_writer
from aidetector.serving.model_runtime import choose_device

# Each stream holds one batch's activations: past 8, more streams buy little and cost memory.
MAX_CPU_STREAMS = 8


@dataclass(frozen=True)
class DecodedBatch:
    """A batch of files without pixels, and the stacked inputs of those without an error."""

    files: list[DecodedFile]
    pixels: np.ndarray


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
    """Stacks a batch's model inputs into one uint8 (N, H, W, 3) array.

    A numpy array, not a tensor: a tensor travels back from a worker through a new shared
    memory segment per batch, which cost more than pickling 100 KB of pixels.
    """

    image_size: int

    def __call__(self, files: list[DecodedFile]) -> DecodedBatch:
        arrays = [f.pixels for f in files if f.pixels is not None]
        side = self.image_size
        stacked = np.stack(arrays) if arrays else np.empty((0, side, side, 3), np.uint8)
        return DecodedBatch([f.without_pixels() for f in files], stacked)


def reset_fsspec_after_fork(_: int) -> None:
    """Give a forked DataLoader worker its own fsspec event loop and filesystem instances."""
    fsspec.asyn.reset_lock()
    fsspec.AbstractFileSystem.clear_instance_cache()


@dataclass(frozen=True)
class StreamLayout:
    """How inference runs: concurrent streams, and intra-op threads each (0: torch's)."""

    streams: int
    threads: int

    @classmethod
    def for_device(cls, device: str) -> StreamLayout:
        """One stream per core up to MAX_CPU_STREAMS on the CPU, one on a GPU."""
        if choose_device(device) != "cpu":
            return cls(streams=1, threads=0)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        cores = cores or os.cpu_count() or 1
        streams = min(cores, MAX_CPU_STREAMS)
        return cls(streams=streams, threads=max(1, cores // streams))


@dataclass
class Tally:
    """Files skipped as already scored, scored, and failed, so far."""

    skipped: int = 0
    scored: int = 0
    errors: int = 0

    def add(self, files: int, rows: Sequence[Row]) -> None:
        """Count a batch of files and the rows written for those not skipped."""
        failed = sum(1 for row in rows if row["error"] is not None)
        self.errors += failed
        self.scored += len(rows) - failed
        self.skipped += files - len(rows)


def score_local(
    paths: Sequence[str], model: ModelRef, out: str, options: ScoreOptions
) -> ScoreSummary:
    """Score paths with model into out, skipping what this model version already scored."""
    started = time.perf_counter()
    writer = open_writer(out)
    layout = StreamLayout.for_device(options.device)
    scorer = BatchScorer(
        model, options.threshold, options.device, options.precision, layout.threads
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
    tally = Tally()
    scoring_started = time.perf_counter()
    # (files in the batch, its rows to come), oldest first: rows are written in input order.
    in_flight: deque[tuple[int, Future[list[Row]]]] = deque()
    streams = ThreadPoolExecutor(layout.streams, thread_name_prefix="inference")
    try:
        with tqdm(
            total=len(paths),
            unit="img",
            desc="scoring",
            disable=not options.progress,
            mininterval=0.5,
            dynamic_ncols=True,
        ) as bar:

            def write_oldest() -> None:
                files, scoring = in_flight.popleft()
                rows = scoring.result()
                if rows:
                    writer.write(rows)
                tally.add(files, rows)
                bar.update(files)
                bar.set_postfix(errors=tally.errors, skipped=tally.skipped, refresh=False)

            for batch in loader:
                if len(in_flight) == layout.streams:
                    write_oldest()
                scoring = streams.submit(scorer.score, batch.files, batch.pixels)
                in_flight.append((len(batch.files), scoring))
            while in_flight:
                write_oldest()
    finally:
        streams.shutdown(wait=True, cancel_futures=True)
        writer.close()
    return ScoreSummary(
        out=out,
        model=model,
        precision=scorer.engine.precision,
        listed=len(paths),
        skipped=tally.skipped,
        scored=tally.scored,
        errors=tally.errors,
        seconds=time.perf_counter() - started,
        scoring_seconds=time.perf_counter() - scoring_started,
    )
