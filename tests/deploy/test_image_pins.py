"""Image pins: every image in the manifests, Dockerfiles and workflows names an exact release,
never a movable tag (latest, none, or a major or minor line)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, Render
from .pods import containers
from .test_kubernetes import K8S, KUSTOMIZATIONS
from .test_workflows import WORKFLOWS, load

DOCKERFILES = sorted((REPO / "deploy" / "docker").glob("*.Dockerfile"))
OWN_IMAGES = (
    "ai-image-detector",
    "ai-image-detector-train",
    "ai-image-detector-mlflow",
    "ai-image-detector-release",
    "ai-image-detector-score",
)
# name:MAJOR.MINOR.PATCH[-variant][@sha256:digest]
EXACT_RELEASE = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+(-[\w.-]+)?(@sha256:[0-9a-f]{64})?$")
# PostgreSQL numbers its releases MAJOR.MINOR since 10: 16.9 is a patch release of 16.
TWO_PART_RELEASE = re.compile(r"^postgres:\d+\.\d+(-[\w.-]+)?(@sha256:[0-9a-f]{64})?$")


def image_problems(images: list[str]) -> list[str]:
    """Images that could change under the same name: latest, no tag, or a partial version."""
    problems = []
    for image in images:
        name, _, tag = image.split("@")[0].rpartition(":")
        if name.rsplit("/", 1)[-1] in OWN_IMAGES:
            # The project's own images carry a release or commit tag set at deploy time.
            if not name or tag in ("", "latest"):
                problems.append(image)
        elif not (EXACT_RELEASE.match(image) or TWO_PART_RELEASE.match(image)):
            problems.append(image)
    return problems


def pod_images(objects: list[dict[str, Any]]) -> list[str]:
    return [box["image"] for obj in objects for box in containers(obj)]


def dockerfile_images(path: Path) -> list[str]:
    return re.findall(r"^FROM\s+(\S+)", path.read_text(), flags=re.MULTILINE)


def workflow_images() -> list[str]:
    images = []
    for path in WORKFLOWS.glob("*.yml"):
        for job in load(path.name)["jobs"].values():
            boxes = [job.get("container"), *job.get("services", {}).values()]
            images += [b if isinstance(b, str) else b["image"] for b in boxes if b]
    return images


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_manifest_images_are_exact_releases(render: Render, name: str) -> None:
    images = pod_images(render(K8S / name))
    assert images
    assert image_problems(images) == []


def test_dockerfile_and_ci_images_are_exact_releases() -> None:
    images = [image for path in DOCKERFILES for image in dockerfile_images(path)]
    assert len(images) == len(DOCKERFILES)
    assert image_problems(images + workflow_images()) == []


def test_image_check_catches_movable_tags() -> None:
    movable = [
        "redis",
        "redis:latest",
        "redis:7",
        "redis:7.2-bookworm",
        "postgres:16-bookworm",
        "python:3.11-slim-bookworm",
        "ghcr.io/example/ai-image-detector:latest",
        "ghcr.io/example/ai-image-detector",
    ]
    assert image_problems(movable) == movable
    exact = [
        "redis:7.2.7-bookworm",
        "postgres:16.9-bookworm",
        f"python:3.11.13-slim-bookworm@sha256:{'0' * 64}",
        "ghcr.io/example/ai-image-detector:3f2a9c1d0b7e",
    ]
    assert image_problems(exact) == []


def test_mlflow_image_tag_is_the_release_its_dockerfile_installs(render: Render) -> None:
    [image] = [i for i in pod_images(render(K8S / "training")) if "mlflow" in i]
    dockerfile = (REPO / "deploy" / "docker" / "mlflow.Dockerfile").read_text()
    [installed] = re.findall(r'"mlflow\[auth\]==([\d.]+)"', dockerfile)
    assert image.endswith(f":{installed}")
