"""The demo on several seeds: does every run end with a champion and a Bento, and what do its
figures look like across seeds? Writes JSON (benchmarks/results/demo_seeds.json).

Each seed runs the real demo pipeline (`dvc repro`, the committed params with only the seeds
changed) in a fresh copy of the repository, with its own MLflow store and BentoML home, as a
new user's first `make demo` would. The seed sets the demo data, the split and training.

    python benchmarks/demo_seeds.py [--seeds 1 2 3 4 5]      (`make demo-seeds`)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "demo_seeds.json"
FIGURES = ("accuracy", "f1_fake", "roc_auc", "ece")


def copy_repository(target: Path) -> None:
    """Copy what a clone holds (tracked and untracked, not ignored files) into target."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for relative in listed:
        source = ROOT / relative
        if source.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)


def run_seed(seed: int, workdir: Path) -> dict[str, Any]:
    """Run the demo pipeline on one seed; return its outcome and the champion's figures."""
    repo = workdir / f"seed-{seed}"
    repo.mkdir()
    copy_repository(repo)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env["BENTOML_HOME"] = str(workdir / f"bentoml-{seed}")
    env["BENTOML_DO_NOT_TRACK"] = "True"
    # The copy's own code, not whatever the venv's editable install points at.
    env["PYTHONPATH"] = str(repo / "src")
    overrides = [f"seed={seed}", f"demo.seed={seed}", f"data.seed={seed}"]
    composed = run([str(bin_dir / "aidetector"), "params", *overrides], repo, env)
    if composed.returncode != 0:
        return {"seed": seed, "ok": False, "error": composed.stderr[-2000:]}
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    started = time.perf_counter()
    repro = run([str(bin_dir / "dvc"), "repro"], repo, env)
    wall_s = time.perf_counter() - started
    outcome: dict[str, Any] = {"seed": seed, "wall_s": round(wall_s, 1)}
    promotion_path = repo / "reports" / "promotion.json"
    package_path = repo / "build" / "package.json"
    if promotion_path.is_file():
        promotion = json.loads(promotion_path.read_text())
        decision = promotion["decision"]
        outcome |= {
            "action": decision["action"],
            "champion": decision["champion_name"],
            "reason": decision["reason"],
        }
        for candidate in promotion["candidates"]:
            test = candidate["rows"].get("test", {})
            outcome.setdefault("candidates", {})[candidate["readable_name"]] = {
                "passed": candidate["passed"],
                **{
                    key: [test.get(key), test.get(f"{key}_low"), test.get(f"{key}_high")]
                    for key in FIGURES
                },
                "ece_calibrated_high": test.get("ece_calibrated_high"),
                "n": test.get("n"),
            }
    if package_path.is_file():
        outcome["bento_model"] = json.loads(package_path.read_text()).get("model_tag")
    outcome["ok"] = repro.returncode == 0 and bool(outcome.get("bento_model"))
    if not outcome["ok"]:
        outcome["error"] = (repro.stdout + repro.stderr)[-3000:]
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="aidetector-seeds-") as folder:
        for seed in args.seeds:
            outcome = run_seed(seed, Path(folder))
            print(json.dumps({k: v for k, v in outcome.items() if k != "error"}), flush=True)
            if not outcome["ok"]:
                print(outcome.get("error", ""), file=sys.stderr)
            outcomes.append(outcome)
    walls = sorted(o["wall_s"] for o in outcomes if "wall_s" in o)
    result = {
        "benchmark": "demo_seeds",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "runs": len(outcomes),
        "with_champion_and_bento": sum(o["ok"] for o in outcomes),
        "pipeline_wall_s_range": [walls[0], walls[-1]] if walls else None,
        "confidence": 0.95,
        "outcomes": outcomes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['with_champion_and_bento']}/{len(outcomes)} seeds set a champion -> {args.out}")
    return 0 if result["with_champion_and_bento"] == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
