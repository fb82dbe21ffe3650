"""MLflow connection settings: the repo's SQLite store by default, MLFLOW_TRACKING_URI overrides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig


def tracking_uri(cfg: DictConfig) -> str:
    """Return MLFLOW_TRACKING_URI if set, otherwise the configured (SQLite) URI."""
    return os.environ.get("MLFLOW_TRACKING_URI") or str(cfg.mlflow.tracking_uri)


def artifact_location(cfg: DictConfig) -> str | None:
    """Return a local artifact folder URI for a local store; a server decides its own."""
    uri = tracking_uri(cfg)
    if uri.startswith(("sqlite:", "file:")) or "://" not in uri:
        return Path(str(cfg.mlflow.artifact_root)).resolve().as_uri()
    return None


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
