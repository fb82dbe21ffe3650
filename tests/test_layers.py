"""The package layers of pyproject.toml's [tool.importlinter] hold: no import points upward."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.fixture(scope="module")
def lint_imports() -> str:
    found = shutil.which("lint-imports") or (str(LINT_IMPORTS) if LINT_IMPORTS.is_file() else None)
    assert found, "lint-imports is installed with the project's requirements"
    return found


def run_contracts(lint_imports: str, source: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [lint_imports, "--config", str(PROJECT_ROOT / "pyproject.toml"), "--no-cache"],
        cwd=source.parent,
        env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(source)},
        capture_output=True,
        text=True,
    )


def test_no_import_points_up_a_layer(lint_imports: str) -> None:
    result = run_contracts(lint_imports, PROJECT_ROOT / "src")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers(lint_imports: str, tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(PROJECT_ROOT / "src" / "aidetector", source / "aidetector")
    schema = source / "aidetector" / "config" / "schema.py"
    schema.write_text(schema.read_text() + "\nfrom aidetector.serving import cache  # noqa\n")
    result = run_contracts(lint_imports, source)
    assert result.returncode != 0
    assert "aidetector.config is not allowed to import aidetector.serving" in result.stdout
