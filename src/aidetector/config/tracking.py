"""MLflow connection settings: the repo's SQLite store by default, MLFLOW_TRACKING_URI overrides."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

from aidetector.config.schema import MlflowConfig

SQLITE_PREFIX = "sqlite:///"


def tracking_uri(mlflow: MlflowConfig) -> str:
    """Return MLFLOW_TRACKING_URI if set, otherwise the configured (SQLite) URI."""
    return os.environ.get("MLFLOW_TRACKING_URI") or mlflow.tracking_uri


def artifact_location(mlflow: MlflowConfig) -> str | None:
    """Return a local artifact folder URI for a local store; a server decides its own."""
    uri = tracking_uri(mlflow)
    if uri.startswith(("sqlite:", "file:")) or "://" not in uri:
        return mlflow.artifact_root.resolve().as_uri()
    return None


@contextmanager
def sqlite_store_lock(uri: str) -> Iterator[None]:
    """Serialise opening a SQLite tracking store across the processes of one machine.

    torchrun starts every rank at once, and each one's MlflowClient would create the store's
    tables at the same moment ("table experiments already exists"). A server URI needs no lock.
    """
    if not uri.startswith(SQLITE_PREFIX):
        yield
        return
    database = Path(uri.removeprefix(SQLITE_PREFIX)).resolve()
    key = hashlib.sha256(str(database).encode()).hexdigest()[:16]
    with FileLock(Path(tempfile.gettempdir()) / f"aidetector-mlflow-{key}.lock"):
        yield


def flatten_config(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested config into dotted keys with string values (MLflow params)."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat
