"""Lightning DDP: one tiny epoch with 2 CPU processes through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT

pytestmark = pytest.mark.ddp


def test_ddp_two_cpu_processes_train_and_export(tmp_path: Path) -> None:
    common = [
        f"demo.root={tmp_path}/raw",
        "demo.n_per_class=24",
        f"paths.prepared={tmp_path}/prepared",
        f"paths.models={tmp_path}/models",
        f"paths.checkpoints={tmp_path}/checkpoints",
        f"paths.train_reports={tmp_path}/reports",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
        f"mlflow.artifact_root={tmp_path}/mlartifacts",
    ]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    cli = [sys.executable, "-m", "aidetector.cli"]
    for step in ("demo-data", "prepare"):
        subprocess.run(
            [*cli, step, *common],
            cwd=PROJECT_ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
    result = subprocess.run(
        [
            *cli,
            "train",
            *common,
            "model=resnet18",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.precision=32-true",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "datamodule.batch_size=8",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout
    assert (
        "All distributed processes registered. Starting with 2 processes"
        in result.stderr + result.stdout
    )
    summary = json.loads((tmp_path / "models/resnet18/train_summary.json").read_text())
    assert 0.0 <= summary["test/acc"] <= 1.0
    assert summary["mlflow_run_id"]
