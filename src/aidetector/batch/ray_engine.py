"""The Ray engine: the same decoding and scoring as the local engine, on a Ray cluster.

The driver lists the sources (the same listing, limit and resume set as the local engine)
and reads the model's files once. Ray Data then runs three stages:
  1. read + decode: `map_batches(decode_files)` tasks call the local engine's FileDecoder on
     each path, so that an unreadable or corrupt file becomes an error row instead of failing
     the read (what `read_binary_files` would do), and already scored files are dropped;
  2. score: `map_batches(ModelActor)`, an actor pool, one model per actor (one GPU each where
     the cluster has GPUs), each running the local engine's BatchScorer on its batches;
  3. `write_parquet` into the --out dataset directory (a new set of part files per run).
The cluster is the one RAY_ADDRESS names (`ray://head:10001`, or `auto` inside a RayJob),
else a local instance. Every node needs this package (`pip install .[ray]`), and --out must
be storage every node writes to: s3://... or a shared volume.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import torch

from aidetector.batch.decode import DecodedFile, FileDecoder
from aidetector.batch.options import ScoreOptions, ScoreSummary
from aidetector.batch.scorer import SCHEMA, BatchScorer, ModelRef, rows_to_table
from aidetector.batch.sources import is_url
from aidetector.batch.writers import output_format, read_scored_parquet
from aidetector.errors import AidetectorError
from aidetector.models.artifact import model_files, read_model_config
from aidetector.preprocessing import Preprocessing
from aidetector.serving.model_runtime import choose_dtype

# Paths per block of the listing: one decode task reads this many files.
FILES_PER_BLOCK = 1024


@dataclass(frozen=True)
class ModelPackage:
    """A model directory's files in memory, shipped to every actor (no shared disk needed)."""

    files: dict[str, bytes]
    name: str
    version: str
    readable_name: str

    @classmethod
    def read(cls, model: ModelRef) -> ModelPackage:
        """Read the weights, domain profile, config.yaml and metrics.json of model."""
        names = model_files(read_model_config(model.model_dir))
        files = {
            n: (model.model_dir / n).read_bytes() for n in names if (model.model_dir / n).is_file()
        }
        return cls(files, model.name, model.version, model.readable_name)

    def unpack(self, directory: Path) -> ModelRef:
        """Write the files into directory; return the model there."""
        for name, data in self.files.items():
            (directory / name).write_bytes(data)
        return ModelRef(directory, self.name, self.version, self.readable_name)


def _fetch(value: Any) -> Any:
    """The object behind an ObjectRef (big arguments travel through the object store)."""
    import ray

    return ray.get(value) if isinstance(value, ray.ObjectRef) else value


def decode_files(batch: dict[str, np.ndarray], decoder: Any, side: int) -> dict[str, Any]:
    """Ray Data stage 1: decode a batch of paths, dropping those already scored.

    decoder is a FileDecoder or an ObjectRef to one (its resume set can be large).
    """
    decode: FileDecoder = _fetch(decoder)
    files = [decode(str(path)) for path in batch["path"]]
    files = [f for f in files if not f.skipped]
    pixels = np.zeros((len(files), side, side, 3), dtype=np.uint8)
    for index, file in enumerate(files):
        if file.pixels is not None:
            pixels[index] = file.pixels
    # Fixed types for Arrow, whatever the batch holds: "" for no text, -1 for no size (a
    # column of only None would otherwise become floats or nulls).
    return {
        "path": np.array([f.path for f in files], dtype=str),
        "sha256": np.array([f.sha256 or "" for f in files], dtype=str),
        "width": np.array([-1 if f.width is None else f.width for f in files], dtype=np.int64),
        "height": np.array([-1 if f.height is None else f.height for f in files], dtype=np.int64),
        "error": np.array([f.error or "" for f in files], dtype=str),
        "pixels": pixels,
    }


class ModelActor:
    """Ray Data stage 2: one loaded model per actor, scoring decoded batches into rows."""

    def __init__(self, package: Any, threshold: float, device: str, precision: str) -> None:
        """package: a ModelPackage, or an ObjectRef to one (the weights go through the store)."""
        self.directory = tempfile.mkdtemp(prefix="aidetector-model-")
        model = _fetch(package).unpack(Path(self.directory))
        self.scorer = BatchScorer(model, threshold, device, precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        """Score one decoded batch; return its rows as an Arrow table of SCHEMA."""
        files = [
            DecodedFile(
                path=str(path),
                sha256=str(sha) or None,
                width=None if width < 0 else int(width),
                height=None if height < 0 else int(height),
                error=str(error) or None,
            )
            for path, sha, width, height, error in zip(
                batch["path"],
                batch["sha256"],
                batch["width"],
                batch["height"],
                batch["error"],
                strict=True,
            )
        ]
        ok = np.array([f.error is None for f in files], dtype=bool)
        pixels = np.asarray(batch["pixels"], dtype=np.uint8)[ok] if len(files) else batch["pixels"]
        return rows_to_table(self.scorer.score(files, pixels))


def _counts(location: str, model: ModelRef) -> tuple[int, int]:
    """(rows, error rows) of this model version in a Parquet result dataset."""
    fs, root = fsspec.core.url_to_fs(location)
    if not fs.exists(root):
        return 0, 0
    dataset = pads.dataset(root, filesystem=fs, format="parquet", schema=SCHEMA)
    table = dataset.to_table(
        columns=["error"],
        filter=(pc.field("model_name") == model.name)
        & (pc.field("model_version") == model.version),
    )
    return table.num_rows, int(pc.count(table.column("error")).as_py())


def score_with_ray(
    paths: Sequence[str],
    model: ModelRef,
    out: str,
    options: ScoreOptions,
    actors: int | None = None,
) -> ScoreSummary:
    """Score paths with model into the Parquet dataset out on the Ray cluster (see above)."""
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise AidetectorError(
            "--engine ray needs Ray: pip install '.[ray]' (the `ray` extra)"
        ) from error
    if output_format(out) != ".parquet":
        raise AidetectorError(f"--engine ray writes Parquet: give --out NAME.parquet, not {out}")
    location = out if is_url(out) else os.path.abspath(out)
    started = time.perf_counter()
    if not ray.is_initialized():
        ray.init()  # RAY_ADDRESS when set, else a local instance
    scored = read_scored_parquet(location, model.name, model.version)
    rows_before, errors_before = _counts(location, model)
    preprocessing = Preprocessing.from_dict(read_model_config(model.model_dir)["preprocessing"])
    scoring_started = time.perf_counter()
    gpus = float(ray.cluster_resources().get("GPU", 0))
    use_gpu = options.device != "cpu" and gpus >= 1
    device = "cuda" if use_gpu else "cpu"
    pool = actors or (int(gpus) if use_gpu else 1)
    listing = ray.data.from_items(
        [{"path": path} for path in paths],
        override_num_blocks=max(1, -(-len(paths) // FILES_PER_BLOCK)),
    )
    decoder = ray.put(FileDecoder(preprocessing, options.limits, scored))
    decoded = listing.map_batches(
        partial(decode_files, decoder=decoder, side=preprocessing.image_size),
        batch_size=options.batch_size,
        batch_format="numpy",
    )
    rows = decoded.map_batches(
        ModelActor,
        fn_constructor_kwargs={
            "package": ray.put(ModelPackage.read(model)),
            "threshold": options.threshold,
            "device": device,
            "precision": options.precision,
        },
        batch_size=options.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=pool),
        num_gpus=1 if use_gpu else 0,
    )
    rows.write_parquet(location)
    scoring_seconds = time.perf_counter() - scoring_started
    rows_after, errors_after = _counts(location, model)
    added, failed = rows_after - rows_before, errors_after - errors_before
    return ScoreSummary(
        out=out,
        model=model,
        precision="fp16" if choose_dtype(device, options.precision) == torch.float16 else "fp32",
        listed=len(paths),
        skipped=len(paths) - added,
        scored=added - failed,
        errors=failed,
        seconds=time.perf_counter() - started,
        scoring_seconds=scoring_seconds,
    )
