"""Exports a registered version (by alias or number) to a directory, verifying its weights."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import mlflow.artifacts
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from aidetector.errors import AidetectorError, first_line
from aidetector.models.artifact import (
    WEIGHTS_FILE,
    file_sha256,
    model_files,
    read_model_config,
)
from aidetector.registry.client import connect, mlflow_errors, resolve_version


@dataclass(frozen=True)
class ExportedModel:
    """A model version written to a directory, with the registry facts about it."""

    registered_model: str
    version: str
    readable_name: str
    out_dir: Path
    weights_sha256: str
    files: tuple[str, ...]
    alias: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""


def verify_version_dir(model_dir: Path, version: ModelVersion) -> str:
    """Return the weights hash after checking it against config.yaml and the version's tag."""
    label = f"version {version.version} of '{version.name}'"
    try:
        config = read_model_config(model_dir)
    except AidetectorError as error:
        raise AidetectorError(f"{label} is corrupt: {error}") from error
    weights = model_dir / str(config.get("weights_file", WEIGHTS_FILE))
    if not weights.is_file():
        raise AidetectorError(f"{label} is corrupt: {weights.name} is missing from its artifacts")
    actual = file_sha256(weights)
    # The tag guards against weights and config.yaml replaced together.
    for source, expected in (
        ("config.yaml", config.get("weights_sha256")),
        ("its registry tag", version.tags.get("weights_sha256")),
    ):
        if expected and actual != expected:
            raise AidetectorError(
                f"{label} is corrupt: {weights.name} has sha256 {actual[:12]}..., "
                f"{source} says {str(expected)[:12]}..."
            )
    return actual


def download_version(client: MlflowClient, version: ModelVersion, dst: Path) -> Path:
    """Download a version's artifact directory into dst and return its local path."""
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=version.source,
            dst_path=str(dst),
            tracking_uri=client.tracking_uri,
        )
    except (MlflowException, OSError) as error:
        raise AidetectorError(
            f"could not download version {version.version} of '{version.name}' "
            f"from {version.source}: {first_line(error)}"
        ) from error
    return Path(local)


def export_model_version(
    client: MlflowClient,
    name: str,
    out_dir: Path,
    alias: str | None = None,
    version: str | int | None = None,
) -> ExportedModel:
    """Write the version's weights, config.yaml and metrics.json to out_dir, hash-checked."""
    model_version = resolve_version(client, name, alias=alias, version=version)
    with tempfile.TemporaryDirectory(prefix="aidetector-export-") as staging:
        local = download_version(client, model_version, Path(staging))
        sha = verify_version_dir(local, model_version)
        out_dir.mkdir(parents=True, exist_ok=True)
        files = []
        for file_name in model_files(read_model_config(local)):
            if (local / file_name).is_file():
                shutil.copyfile(local / file_name, out_dir / file_name)
                files.append(file_name)
    return ExportedModel(
        registered_model=name,
        version=str(model_version.version),
        readable_name=model_version.tags.get("readable_name", ""),
        out_dir=out_dir,
        weights_sha256=sha,
        files=tuple(files),
        alias=alias if version is None else None,
        tags=dict(model_version.tags),
        description=model_version.description or "",
    )


def export_from_uri(
    uri: str, name: str, out_dir: Path, alias: str | None = None, version: str | int | None = None
) -> ExportedModel:
    """Connect to uri and export one version (see export_model_version)."""
    client = connect(uri)
    with mlflow_errors(uri):
        return export_model_version(client, name, out_dir, alias=alias, version=version)
