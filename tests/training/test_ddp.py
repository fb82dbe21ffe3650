"""Lightning DDP through the real CLI: 2 CPU processes spawned by Lightning, and 2 "nodes"
launched by torchrun the way deploy/k8s/training/ddp-job.yaml launches them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT

pytestmark = pytest.mark.ddp

CLI = [sys.executable, "-m", "aidetector.cli"]
TORCHRUN = Path(sys.executable).parent / "torchrun"
TINY_TRAINING = [
    "model=resnet18",
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.precision=32-true",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "datamodule.batch_size=8",
]


def overrides(root: Path) -> list[str]:
    return [
        f"demo.root={root}/raw",
        "demo.n_per_class=24",
        f"paths.prepared={root}/prepared",
        f"paths.models={root}/models",
        f"paths.checkpoints={root}/checkpoints",
        f"paths.train_reports={root}/reports",
        f"mlflow.tracking_uri=sqlite:///{root}/mlflow.db",
        f"mlflow.artifact_root={root}/mlartifacts",
    ]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}


@pytest.fixture
def prepared(tmp_path: Path) -> Path:
    for step in ("demo-data", "prepare"):
        subprocess.run(
            [*CLI, step, *overrides(tmp_path)],
            cwd=PROJECT_ROOT,
            env=clean_env(),
            check=True,
            capture_output=True,
            timeout=120,
        )
    return tmp_path


def assert_trained(root: Path) -> None:
    summary = json.loads((root / "models/resnet18/train_summary.json").read_text())
    assert 0.0 <= summary["test/acc"] <= 1.0
    assert summary["mlflow_run_id"]


def test_ddp_two_cpu_processes_train_and_export(prepared: Path) -> None:
    result = subprocess.run(
        [*CLI, "train", *overrides(prepared), *TINY_TRAINING, "trainer.devices=2"],
        cwd=PROJECT_ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stderr + result.stdout
    assert result.returncode == 0, result.stderr[-4000:]
    assert "distributed_backend=gloo" in output
    assert "All distributed processes registered. Starting with 2 processes" in output
    assert_trained(prepared)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_nodes_as_the_kubernetes_job_launches_them(prepared: Path) -> None:
    # One torchrun per "node", node rank from the index, a static master address: the
    # Indexed Job's command with --nproc-per-node=1 and CPU processes instead of GPUs.
    port = free_port()
    # Files, not pipes: a full pipe would stall one rank while the other waits in a collective.
    logs = [prepared / f"node{rank}.log" for rank in (0, 1)]
    nodes = [
        subprocess.Popen(
            [
                str(TORCHRUN),
                "--nnodes=2",
                "--nproc-per-node=1",
                f"--node-rank={rank}",
                "--master-addr=127.0.0.1",
                f"--master-port={port}",
                "-m",
                "aidetector.cli",
                "train",
                *overrides(prepared),
                *TINY_TRAINING,
                "trainer.devices=1",
                "trainer.num_nodes=2",
            ],
            cwd=PROJECT_ROOT,
            env=clean_env(),
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        for rank, log in enumerate(logs)
    ]
    try:
        for node in nodes:
            node.wait(timeout=300)
    finally:
        for node in nodes:
            node.kill()
    outputs = [log.read_text() for log in logs]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert "All distributed processes registered. Starting with 2 processes" in outputs[0]
    assert_trained(prepared)
