"""Bulk scoring on a GPU: FP16 on CUDA, close to the FP32 CPU scores, as serving does.

Needs a CUDA device and skips elsewhere with that reason (`make test-gpu` runs it).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from aidetector.batch.local import score_local
from aidetector.batch.model import local_model
from aidetector.batch.options import ScoreOptions
from aidetector.batch.sources import list_sources

from .conftest import ImageFolder, by_path, read_results

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (FP16 scoring)"),
]

# FP16 keeps about 3 significant digits (the serving GPU test's tolerance).
FP16_VS_FP32_ATOL = 1e-2


def test_scoring_runs_fp16_on_cuda_close_to_fp32_on_the_cpu(
    tmp_path: Path, model_dir: Path, image_folder: ImageFolder, options: ScoreOptions
) -> None:
    paths, model = list_sources([str(image_folder.root)]), local_model(model_dir)
    score_local(paths, model, str(tmp_path / "cpu.jsonl"), options)
    gpu = score_local(
        paths, model, str(tmp_path / "gpu.jsonl"), replace(options, device="auto", workers=2)
    )
    assert gpu.precision == "fp16"
    cpu_rows = by_path(read_results(tmp_path / "cpu.jsonl"), image_folder.root)
    gpu_rows = by_path(read_results(tmp_path / "gpu.jsonl"), image_folder.root)
    assert cpu_rows.keys() == gpu_rows.keys()
    for name, row in gpu_rows.items():
        assert row["model_precision"] == "fp16"
        assert row["error"] == cpu_rows[name]["error"]
        if row["prob_fake"] is not None:
            assert abs(row["prob_fake"] - cpu_rows[name]["prob_fake"]) < FP16_VS_FP32_ATOL
