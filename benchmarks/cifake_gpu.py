"""The GPU recipe on a lent device: experiment=cifake_gpu through `dvc exp run`, timed.

Runs prepare -> train -> evaluate for resnet18 at 128 px (16-mixed, channels-last) on CIFAKE,
then writes the test metrics, the suite, the wall time and the device to JSON:

    python benchmarks/cifake_gpu.py --data-root ../shared/data/cifake/train [--epochs 12]

It needs CUDA and says so in one line without it. Registration and promotion are left out:
the lent machine reaches no tracking server, and the gates are the same as every run's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "cifake_gpu.json"
MODEL = "resnet18"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared/data/cifake/train")
    parser.add_argument("--epochs", type=int, help="override the preset's trainer.max_epochs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("cifake_gpu: no CUDA device here; run it on a GPU machine", file=sys.stderr)
        return 2
    if not (args.data_root / "REAL").is_dir():
        print(f"cifake_gpu: no REAL/ and FAKE/ under {args.data_root}", file=sys.stderr)
        return 2
    overrides = ["experiment=cifake_gpu", f"data.root={args.data_root.resolve()}"]
    if args.epochs:
        overrides.append(f"trainer.max_epochs={args.epochs}")
    command = ["dvc", "exp", "run", *[f"-S={o}" for o in overrides], f"evaluate@{MODEL}"]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seconds = time.perf_counter() - started
    reports = ROOT / "reports" / "eval" / MODEL
    report = {
        "benchmark": "cifake_gpu",
        "overrides": overrides,
        "wall_seconds_prepare_to_evaluate": round(seconds, 1),
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "test": json.loads((reports / "metrics.json").read_text()),
        "suite": json.loads((reports / "suite.json").read_text()),
        "train_summary": json.loads((ROOT / "models" / MODEL / "train_summary.json").read_text()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["test"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
