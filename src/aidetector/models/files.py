"""The files of a model directory that config.yaml names and checks by sha256."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aidetector.errors import AidetectorError


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of a file."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def checked_section_file(
    model_dir: Path, section: Mapping[str, Any], default_file: str, section_name: str
) -> Path:
    """Return the file a config.yaml section names, present and matching its sha256."""
    path = Path(model_dir) / str(section.get("file", default_file))
    if not path.is_file():
        raise AidetectorError(
            f"{model_dir}: {path.name} is missing but config.yaml has a {section_name} section"
        )
    expected = section.get("sha256")
    if expected and file_sha256(path) != expected:
        raise AidetectorError(f"{path} is corrupt: its sha256 does not match config.yaml")
    return path
