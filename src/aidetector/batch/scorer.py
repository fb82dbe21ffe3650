"""Batches of decoded files through serving's engine into result rows.

The engine is serving's InferenceEngine (FP16 on CUDA, FP32 on the CPU, the model
directory's temperature, class order and domain profile) and each verdict is built by
serving's prediction_body, so a file scored here gets what /predict answers for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from aidetector.batch.decode import DecodedFile
from aidetector.serving.cache import CachedPrediction
from aidetector.serving.model_runtime import InferenceEngine, ModelIdentity
from aidetector.serving.verdicts import prediction_body

# One row per file. verdict, in_domain and domain_reason are null for a model without a
# domain profile; the model columns are set on error rows too (resume keys on them).
SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("sha256", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("label", pa.string()),
        ("prob_fake", pa.float64()),
        ("confidence", pa.float64()),
        ("verdict", pa.string()),
        ("in_domain", pa.bool_()),
        ("domain_reason", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("model_precision", pa.string()),
        ("error", pa.string()),
    ]
)
COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)
Row = dict[str, Any]


@dataclass(frozen=True)
class ModelRef:
    """Which model scores: its directory and the registry's name, version and readable name."""

    model_dir: Path
    name: str
    version: str
    readable_name: str


class BatchScorer:
    """Scores decoded files with one loaded model; one instance per process or Ray actor."""

    def __init__(
        self,
        model: ModelRef,
        threshold: float,
        device: str = "auto",
        precision: str = "auto",
        cpu_threads: int = 0,
    ) -> None:
        self.engine = InferenceEngine(model.model_dir, device, precision, cpu_threads)
        self.threshold = threshold
        self.identity = ModelIdentity(
            name=model.name,
            version=model.version,
            readable_name=model.readable_name,
            precision=self.engine.precision,
            class_order=self.engine.loaded.class_order,
            weights_sha256=self.engine.weights_sha256,
        )
        self.has_domain = self.engine.loaded.domain is not None

    @property
    def image_size(self) -> int:
        """Side of the square model input."""
        return self.engine.image_size

    def model_columns(self) -> Row:
        """The model columns every row of this scorer carries."""
        return {
            "model_name": self.identity.name,
            "model_version": self.identity.version,
            "model_precision": self.identity.precision,
        }

    def score(self, files: Sequence[DecodedFile], pixels: np.ndarray) -> list[Row]:
        """Return one row per file that is not skipped, in order.

        pixels is uint8 (N, H, W, 3) holding, in order, the inputs of the files without an
        error; those with one become error rows.
        """
        wanted = [f for f in files if not f.skipped]
        scored = sum(1 for f in wanted if f.error is None)
        if scored != len(pixels):
            raise ValueError(f"{scored} files to score but {len(pixels)} inputs")
        outputs = self.engine.predict(pixels).tolist() if len(pixels) else []
        model = self.model_columns()
        rows: list[Row] = []
        results = iter(outputs)
        for file in wanted:
            row = {
                **dict.fromkeys(COLUMNS),
                "path": file.path,
                "sha256": file.sha256,
                "width": file.width,
                "height": file.height,
                **model,
            }
            if file.error is not None:
                rows.append({**row, "error": file.error})
                continue
            prob_fake, domain_score = next(results)
            rows.append({**row, **self._verdict(file, prob_fake, domain_score)})
        return rows

    def _verdict(self, file: DecodedFile, prob_fake: float, domain_score: float) -> Row:
        assert file.sha256 is not None and file.width is not None and file.height is not None
        prediction = CachedPrediction(prob_fake, domain_score, file.width, file.height)
        check = self.engine.check_domain(domain_score, file.width, file.height)
        body = prediction_body(
            file.sha256, prediction, check, self.threshold, self.identity, False, 0.0
        )
        return {
            "label": body["label"],
            "prob_fake": body["prob_fake"],
            "confidence": body["confidence"],
            "verdict": body["verdict"] if self.has_domain else None,
            "in_domain": body["in_domain"] if self.has_domain else None,
            "domain_reason": body["reason"] if self.has_domain else None,
        }


def rows_to_table(rows: Sequence[Row]) -> pa.Table:
    """Return rows as an Arrow table of SCHEMA (types fixed even when a column is all null)."""
    return pa.Table.from_pylist([dict(row) for row in rows], schema=SCHEMA)
