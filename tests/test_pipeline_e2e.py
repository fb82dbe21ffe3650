"""End to end: the real demo pipeline (`dvc repro`) in a temporary copy of the repository, on
seeds other than the default: a newcomer's `make demo` must end with a champion and a Bento
whatever the seed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

# The demo's own settings and gates; only the seeds differ from the committed params.yaml.
DEMO_SEED = ["seed=7", "demo.seed=7", "data.seed=7", "trainer.enable_progress_bar=false"]
# For the experiment below: a tiny, one-epoch run near chance, with the gates opened.
TINY = [
    "demo.n_per_class=30",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "datamodule.batch_size=16",
    "evaluate.latency_samples=5",
    "evaluate.latency_warmup=1",
    "registry.promote.min_accuracy=0.0",
    "registry.promote.max_ece=1.0",
    "registry.promote.max_fp16_accuracy_drop=1.0",
    "registry.promote.max_latency_ms_p95=100000",
]


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    # The package stage imports into the BentoML store: keep it out of the user's ~/bentoml.
    env["BENTOML_HOME"] = str(cwd.parent / f"{cwd.name}-bentoml")
    env["BENTOML_DO_NOT_TRACK"] = "True"
    # The copy's own code, not whatever the venv's editable install points at.
    env["PYTHONPATH"] = str(cwd / "src")
    # A safety net, not a speed check: the real demo takes 5-15 min on 2 busy cores.
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, (
        f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository holding the project's files (what a clone has), seeded with 7."""
    target = tmp_path_factory.mktemp("repo")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for relative in listed:
        source = PROJECT_ROOT / relative
        if source.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)
    run([sys.executable, "-m", "aidetector.cli", "params", *DEMO_SEED], target)
    run(["git", "init", "-q"], target)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], target)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "tiny"], target)
    return target


def dvc(repo: Path, *args: str) -> str:
    return run([sys.executable, "-m", "dvc", *args], repo).stdout


def registry_versions(repo: Path) -> list[ModelVersion]:
    """Every version of the default registered model in the copy's SQLite store."""
    client = MlflowClient(f"sqlite:///{repo}/mlflow.db")
    return list(client.search_model_versions("name='ai-image-detector'"))


def test_repro_produces_outputs_for_both_model_families(repo_copy: Path) -> None:
    output = dvc(repo_copy, "repro")
    stages = ("demo_data", "prepare", "train@resnet18", "train@vit_tiny", "evaluate@vit_tiny")
    for stage in (*stages, "register", "promote", "package"):
        assert f"Running stage '{stage}'" in output
    package = json.loads((repo_copy / "build/package.json").read_text())
    assert package["model_tag"].startswith("ai-image-detector:")
    for model in ("resnet18", "vit_tiny"):
        model_dir = repo_copy / "models" / model
        assert (model_dir / "model.safetensors").is_file()
        assert (model_dir / "config.yaml").is_file()
        metrics = json.loads((repo_copy / "reports/eval" / model / "metrics.json").read_text())
        for key in ("accuracy", "f1_fake", "roc_auc", "latency_ms_p95", "fp16_accuracy_delta"):
            assert key in metrics
        assert (repo_copy / "reports/eval" / model / "png/confusion_matrix.png").stat().st_size > 0
        # Calibrated, with a domain profile, and scored on the evaluation suite.
        assert (model_dir / "domain.safetensors").is_file()
        assert "temperature" in (model_dir / "config.yaml").read_text()
        suite = json.loads((repo_copy / "reports/eval" / model / "suite.json").read_text())
        assert {"test", "test:jpeg_q50", "test:half_size"} <= set(suite)
        assert {"ece", "brier", "flagged", "accuracy_drop"} <= set(suite["test"])
        reliability = (repo_copy / "reports/eval" / model / "reliability.csv").read_text()
        assert reliability.startswith("bin_lower,bin_upper,confidence,accuracy,count")
        assert (repo_copy / "reports/eval" / model / "drift_reference.json").is_file()
    # evaluate -> register -> export -> package: the served model carries its drift reference.
    name, version = package["model_tag"].split(":")
    bento_model = repo_copy.parent / f"{repo_copy.name}-bentoml" / "models" / name / version
    reference = json.loads((bento_model / "drift_reference.json").read_text())
    assert {"width", "brightness", "high_freq", "prob_fake"} <= set(reference["features"])
    shown = json.loads(dvc(repo_copy, "metrics", "show", "--json"))
    assert "f1_fake" in json.dumps(shown)
    assert (repo_copy / "mlflow.db").is_file()


def test_repro_registers_both_precisions_and_promotes_an_fp16_champion(repo_copy: Path) -> None:
    # Runs after the first repro (module order); the registry lives in the copy's mlflow.db.
    versions = registry_versions(repo_copy)
    assert sorted((v.tags["model_name"], v.tags["precision"]) for v in versions) == [
        ("resnet18", "fp16"),
        ("resnet18", "fp32"),
        ("vit_tiny", "fp16"),
        ("vit_tiny", "fp32"),
    ]
    assert {v.tags["readable_name"] for v in versions} == {
        "v1.0_cnn_resnet18_fp32",
        "v1.1_cnn_resnet18_fp16",
        "v2.0_vit_tiny_fp32",
        "v2.1_vit_tiny_fp16",
    }
    client = MlflowClient(f"sqlite:///{repo_copy}/mlflow.db")
    champion = client.get_model_version_by_alias("ai-image-detector", "champion")
    assert champion.tags["precision"] == "fp16"
    promotion = json.loads((repo_copy / "reports/promotion.json").read_text())
    assert promotion["decision"]["champion"] == str(champion.version)
    assert promotion["decision"]["action"] == "promote"
    assert "there was no champion" in promotion["decision"]["reason"]
    assert len(promotion["candidates"]) == 2
    # The demo's gates are met with the real settings: every figure carries its interval.
    winner = next(c for c in promotion["candidates"] if c["version"] == str(champion.version))
    assert winner["passed"] and promotion["confidence"] == 0.95
    test_row = winner["rows"]["test"]
    assert test_row["accuracy_low"] <= test_row["accuracy"] <= test_row["accuracy_high"]
    assert test_row["n"] >= 1000 and test_row["accuracy_high"] - test_row["accuracy_low"] < 0.05
    # Every candidate was scored on the one suite that evaluate used, in this run.
    suite_hash = promotion["suite"]["hash"]
    evaluated = json.loads((repo_copy / "reports/eval/resnet18/suite.json").read_text())
    assert evaluated["suite_hash"] == suite_hash
    assert all(c["rows"]["test"]["n"] > 0 and not c["unscored"] for c in promotion["candidates"])
    assert suite_hash[:12] in str(champion.description)
    assert "brackets hold 95% intervals" in str(champion.description)


def test_second_repro_does_nothing(repo_copy: Path) -> None:
    before = {v.version for v in registry_versions(repo_copy)}
    output = dvc(repo_copy, "repro")
    assert "Running stage" not in output
    assert "up to date" in output.lower()
    # Even a forced re-run of register finds the same weights and adds no versions.
    dvc(repo_copy, "repro", "--force", "--single-item", "register")
    assert {v.version for v in registry_versions(repo_copy)} == before
    assert "Running stage" not in dvc(repo_copy, "repro")


def test_changed_model_param_reruns_only_that_model(repo_copy: Path) -> None:
    params = repo_copy / "params.yaml"
    original = params.read_text()
    params.write_text(
        original.replace("drop_rate: 0.0", "drop_rate: 0.1", 1)
    )  # resnet18 comes first
    try:
        status = json.loads(dvc(repo_copy, "status", "--json"))
    finally:
        params.write_text(original)
    assert set(status) == {"train@resnet18"}, status


def test_exp_run_swaps_the_model_group(repo_copy: Path) -> None:
    overrides = [arg for override in TINY for arg in ("-S", override)]
    dvc(repo_copy, "exp", "run", "-S", "model=vit_tiny", *overrides)
    shown = dvc(repo_copy, "exp", "show", "--json")
    assert "vit_tiny" in shown
