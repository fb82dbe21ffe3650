"""The receiver's image (deploy/docker/release.Dockerfile) installs a short list of packages,
not the project's requirements: everything the receiver imports must come from that list.

Checked without Docker: the packages the Dockerfile names, with their own requirements as
installed here, against the modules that loading the config and building the receiver's app
actually import in a fresh interpreter."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import re
import subprocess
import sys

from packaging.requirements import Requirement

from conftest import PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / "deploy" / "docker" / "release.Dockerfile"

# What `aidetector webhook serve` does, in a clean interpreter where every module outside the
# standard library, the project and argv[1] fails to import, as if it were not installed:
# optional imports (rich for httpx's CLI, uvloop, python-multipart ...) then fall back as they
# would in the image, and a required one fails the run.
PROBE = """
import importlib.machinery, json, sys

ALLOWED = set(json.loads(sys.argv[1]))


class OnlyTheImage(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        top = name.split(".")[0]
        if top in ALLOWED or top in sys.stdlib_module_names or top.startswith("_"):
            return super().find_spec(name, path, target)
        return None  # not installed


sys.meta_path = [
    OnlyTheImage if finder is importlib.machinery.PathFinder else finder
    for finder in sys.meta_path
]

from pathlib import Path
import uvicorn
from starlette.testclient import TestClient
from aidetector.cli import build_parser
from aidetector.config.loading import load_config
from aidetector.release.github import GitHubDispatcher
from aidetector.release.receiver import create_app
from aidetector.config.release import ReleaseSecrets

build_parser().parse_args(["webhook", "serve"])
cfg = load_config([], Path("params.yaml"))
secrets = ReleaseSecrets(("s" * 32,), "t" * 32)
app = create_app(cfg.release, secrets, GitHubDispatcher(cfg.release.github, "a/b", "t" * 32))
uvicorn.Config(app).load()  # picks its HTTP protocol and event loop from what is installed
with TestClient(app) as client:
    assert client.get("/livez").status_code == 200
    assert client.post("/mlflow", content=b"{}").status_code == 401
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def dockerfile_packages() -> list[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    [line] = re.findall(r"pip install -c constraints\.txt ([^&]+)", text)
    return line.split()


def closure(names: list[str]) -> set[str]:
    """The distributions names need, transitively, as installed (no extras, this platform)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = metadata.distribution(todo.pop()).metadata["Name"].lower()
        if name in seen:
            continue
        seen.add(name)
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def importable(distributions: set[str]) -> set[str]:
    """The top-level module names those distributions provide."""
    provided = metadata.packages_distributions()
    return {
        module
        for module, owners in provided.items()
        if any(owner.lower() in distributions for owner in owners)
    }


def test_every_package_the_image_installs_is_pinned_by_constraints() -> None:
    pinned = {
        line.split("==")[0].lower()
        for line in (PROJECT_ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    packages = dockerfile_packages()
    assert "starlette" in packages and "uvicorn" in packages
    assert [p for p in packages if p.lower() not in pinned] == []


def test_the_receiver_runs_with_only_what_its_image_installs() -> None:
    allowed = importable(closure(dockerfile_packages())) | {"aidetector"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(sorted(allowed))],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = set(json.loads(result.stdout.splitlines()[-1]))
    assert {"starlette", "uvicorn", "httpx", "hydra"} <= imported
    assert not imported & {"torch", "mlflow", "bentoml", "lightning"}


def test_the_probe_fails_when_the_image_lacks_a_package() -> None:
    allowed = importable(closure(dockerfile_packages())) - {"cachetools"} | {"aidetector"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(sorted(allowed))],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0 and "cachetools" in result.stderr
