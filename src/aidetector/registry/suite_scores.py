"""Scores registered versions on the evaluation suite from their registry artifacts, cached.

The cache key is the version's weights sha256 plus the suite hash: the same weights on the
same suite always give the same table, so a promotion only scores what it has not seen. Beside
the table (JSON) the cache keeps P(FAKE) per image and row (.npz, no pickles), which the
promotion's paired comparisons need.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from aidetector.errors import AidetectorError
from aidetector.evaluation.scoring import score_model
from aidetector.evaluation.suite import Suite
from aidetector.models.artifact import load_model_dir
from aidetector.registry.export import download_version, verify_version_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoringSettings:
    """How versions are scored: batch size and batch-1 latency samples (evaluate.*)."""

    batch_size: int = 256
    latency_samples: int = 100
    latency_warmup: int = 10


@dataclass(frozen=True)
class VersionScores:
    """A version's suite table (rows + model-level figures) and its per-image P(FAKE) per
    set and variant row, or why it could not be scored."""

    version: str
    weights_sha256: str
    rows: dict[str, dict[str, float]]
    model: dict[str, float]
    error: str | None = None
    from_cache: bool = False
    outputs: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def cache_path(cache_dir: Path, weights_sha256: str, suite_hash: str) -> Path:
    """Return where the scores of these weights on this suite are cached (the table's JSON)."""
    return Path(cache_dir) / f"{weights_sha256}-{suite_hash}.json"


def _outputs_path(path: Path) -> Path:
    return path.with_suffix(".npz")


def _read_cache(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """Return the cached table and outputs; None when either is missing (an older cache)."""
    try:
        data = json.loads(path.read_text())
        with np.load(_outputs_path(path), allow_pickle=False) as archive:
            outputs = {name: archive[name] for name in archive.files}
    except (OSError, ValueError):
        return None
    if not (isinstance(data, dict) and "rows" in data and "model" in data):
        return None
    return data, outputs


def _write_cache(path: Path, data: dict[str, Any], outputs: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Outputs first, the table last: a table on disk always has its outputs beside it.
    temporary_outputs = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(temporary_outputs, allow_pickle=False, **outputs)
    os.replace(temporary_outputs, _outputs_path(path))
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(temporary, path)


def score_version(
    client: MlflowClient,
    version: ModelVersion,
    suite: Suite,
    settings: ScoringSettings,
    cache_dir: Path,
) -> VersionScores:
    """Return one version's suite table, from the cache or by scoring its registry artifacts."""
    sha = version.tags.get("weights_sha256", "")
    path = cache_path(cache_dir, sha, suite.hash) if sha else None
    cached = _read_cache(path) if path else None
    if cached is not None:
        table, outputs = cached
        return VersionScores(
            str(version.version),
            sha,
            table["rows"],
            table["model"],
            from_cache=True,
            outputs=outputs,
        )
    try:
        with tempfile.TemporaryDirectory(prefix="aidetector-score-") as staging:
            local = download_version(client, version, Path(staging))
            sha = verify_version_dir(local, version)
            # FP32 compute, as the CPU serves it; the FP16 compute delta is part of the table.
            loaded = load_model_dir(local, dtype=torch.float32)
            scores = score_model(
                loaded,
                suite,
                batch_size=settings.batch_size,
                latency_samples=settings.latency_samples,
                latency_warmup=settings.latency_warmup,
            )
    except AidetectorError as error:
        log.warning("version %s cannot be scored on the suite: %s", version.version, error)
        return VersionScores(str(version.version), sha, {}, {}, error=str(error))
    data = {"rows": scores.rows, "model": scores.model, "suite_hash": suite.hash}
    _write_cache(cache_path(cache_dir, sha, suite.hash), data, scores.outputs)
    return VersionScores(
        str(version.version), sha, scores.rows, scores.model, outputs=scores.outputs
    )
