"""deploy/k8s/scoring: the RayJob that runs `aidetector score --engine ray` on KubeRay."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import yaml

from aidetector.cli import build_parser

from .conftest import REPO, Render
from .kuberay import kuberay_problems
from .test_kubernetes import K8S, KUBERNETES_VERSION, find

Objects = list[dict[str, Any]]
JOB = "ai-image-detector-score"


@pytest.fixture(scope="module")
def scoring(render: Render) -> Objects:
    return render(K8S / "scoring")


@pytest.fixture(scope="module")
def job(scoring: Objects) -> dict[str, Any]:
    return find(scoring, "RayJob", JOB)


def copy(obj: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(yaml.safe_dump(obj))


def test_the_entrypoint_is_a_valid_score_command_on_the_ray_engine(
    job: dict[str, Any], scoring: Objects
) -> None:
    entrypoint = job["spec"]["entrypoint"]
    cd, command = entrypoint.split("&&")
    assert cd.strip() == "cd /app"  # params.yaml (serve settings) is the image's
    words = shlex.split(command)
    assert words[:2] == ["aidetector", "score"]
    values = next(o for o in scoring if o["kind"] == "ConfigMap")["data"]
    expanded = [re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], w) for w in words[1:]]
    args, extra = build_parser().parse_known_args(expanded)
    assert extra == [] and args.engine == "ray" and args.inputs[0].startswith("s3://")
    assert args.out.startswith("s3://") and args.out.endswith(".parquet")
    # The ConfigMap the variables come from is the head's (kustomize follows its new name).
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    config_maps = {e["configMapRef"]["name"] for e in head["envFrom"] if "configMapRef" in e}
    assert config_maps == {next(o for o in scoring if o["kind"] == "ConfigMap")["metadata"]["name"]}
    # One model actor per GPU worker.
    [workers] = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert int(values["SCORE_WORKERS"]) == workers["replicas"]


def test_every_ray_node_runs_the_score_image_at_the_pinned_ray(job: dict[str, Any]) -> None:
    cluster = job["spec"]["rayClusterSpec"]
    pinned = re.search(r"^ray\[data\]==([\d.]+)$", (REPO / "requirements-extras.txt").read_text(),
                       re.M)  # fmt: skip
    assert pinned and cluster["rayVersion"] == pinned.group(1)
    templates = [cluster["headGroupSpec"]["template"]] + [
        group["template"] for group in cluster["workerGroupSpecs"]
    ]
    images = {box["image"] for t in templates for box in t["spec"]["containers"]}
    assert images == {"ghcr.io/example/ai-image-detector-score:unreleased"}
    dockerfile = (REPO / "deploy" / "docker" / "score.Dockerfile").read_text()
    assert "-r requirements-extras.txt" in dockerfile and "s3fs==" in dockerfile
    # The head only drives; the workers hold the GPUs the model actors use.
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    for group in cluster["workerGroupSpecs"]:
        resources = group["template"]["spec"]["containers"][0]["resources"]
        assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == 1
    for template in templates:
        assert template["spec"]["securityContext"]["runAsNonRoot"] is True
        assert template["spec"]["automountServiceAccountToken"] is False
        box = template["spec"]["containers"][0]
        assert box["securityContext"]["allowPrivilegeEscalation"] is False
        mounts = {m["mountPath"] for m in box["volumeMounts"]}
        assert "/dev/shm" in mounts  # Ray's object store


def test_the_job_cleans_up_and_reads_mlflow_as_the_training_job_does(job: dict[str, Any]) -> None:
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["submissionMode"] == "HTTPMode"
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in head["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000"
    for variable, key in [
        ("MLFLOW_TRACKING_USERNAME", "username"),
        ("MLFLOW_TRACKING_PASSWORD", "password"),
    ]:
        assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-client", "key": key}


def test_kuberay_validation_catches_broken_jobs(job: dict[str, Any]) -> None:
    assert kuberay_problems(job, KUBERNETES_VERSION) == []
    misspelt = copy(job)
    misspelt["spec"]["rayClusterSpec"]["workerGroupSpec"] = misspelt["spec"]["rayClusterSpec"].pop(
        "workerGroupSpecs"
    )
    assert any("workerGroupSpec" in p for p in kuberay_problems(misspelt, KUBERNETES_VERSION))
    unquoted = copy(job)
    unquoted["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = 0
    assert any("num-cpus" in p for p in kuberay_problems(unquoted, KUBERNETES_VERSION))
    bad_pod = copy(job)
    worker = bad_pod["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]
    worker["containers"][0]["resources"]["limits"]["memory"] = ["32Gi"]
    assert any("pod template" in p for p in kuberay_problems(bad_pod, KUBERNETES_VERSION))
    too_many = copy(job)
    too_many["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] = 5
    assert any("replicas" in p for p in kuberay_problems(too_many, KUBERNETES_VERSION))
