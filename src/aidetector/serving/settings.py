"""Serving settings: the `serve` node of params.yaml, plus secrets from the environment only."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from aidetector.errors import AidetectorError

PARAMS_ENV = "AIDETECTOR_PARAMS"
MODEL_TAG_ENV = "AIDETECTOR_MODEL_TAG"
# A YAML mapping of serve settings that replace the packaged ones (a Kubernetes ConfigMap).
OVERRIDES_ENV = "AIDETECTOR_SERVE_OVERRIDES"


@dataclass(frozen=True)
class ServeSettings:
    """Limits, batching and cache settings of the service (see conf/serve/default.yaml)."""

    bento_model: str
    device: str
    precision: str
    gpus: int
    cpu_threads: int
    threshold: float
    max_batch_size: int
    max_latency_ms: int
    max_batch_wait_ms: float
    workers: int
    timeout_s: int
    max_concurrency: int
    access_log: bool
    max_bytes: int
    max_pixels: int
    max_batch_images: int
    max_batch_bytes: int
    formats: tuple[str, ...]
    cache_ttl_s: int
    cache_timeout_s: float
    cache_retry_after_s: float
    warning_interval_s: float
    feedback_memory: int
    feedback_window: int

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> ServeSettings:
        """Build from the `serve` mapping; a missing or unknown key is a clear error."""
        names = {f.name for f in fields(cls)}
        missing = sorted(names - data.keys())
        if missing:
            raise AidetectorError(f"serve config lacks {', '.join(missing)}; run `make params`")
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = data[f.name]
            values[f.name] = tuple(str(v).upper() for v in value) if f.name == "formats" else value
        settings = cls(**values)
        if settings.max_batch_size < 2:
            raise AidetectorError("serve.max_batch_size must be at least 2 (BentoML batching)")
        return settings

    @property
    def model_tag(self) -> str:
        """The BentoML model tag to serve: AIDETECTOR_MODEL_TAG, else NAME:latest."""
        return os.environ.get(MODEL_TAG_ENV) or f"{self.bento_model}:latest"


def params_path() -> Path:
    """Return AIDETECTOR_PARAMS if set, else params.yaml in the working directory."""
    return Path(os.environ.get(PARAMS_ENV) or "params.yaml")


def load_serve_settings(path: Path | None = None) -> ServeSettings:
    """Read the `serve` node of a composed params.yaml, then AIDETECTOR_SERVE_OVERRIDES."""
    path = path or params_path()
    if not path.is_file():
        raise AidetectorError(f"{path} not found; run from the project root or set {PARAMS_ENV}")
    params = yaml.safe_load(path.read_text()) or {}
    if "serve" not in params:
        raise AidetectorError(f"{path} has no `serve` section; run `make params`")
    serve = dict(params["serve"])
    overrides_file = os.environ.get(OVERRIDES_ENV)
    if overrides_file:
        serve.update(load_overrides(Path(overrides_file)))
    return ServeSettings.from_mapping(serve)


def load_overrides(path: Path) -> dict[str, Any]:
    """A mapping of known serve settings; an unknown key is an error, not a silent no-op."""
    if not path.is_file():
        raise AidetectorError(f"{OVERRIDES_ENV}={path}: file not found")
    overrides = yaml.safe_load(path.read_text()) or {}
    if not isinstance(overrides, dict):
        raise AidetectorError(f"{OVERRIDES_ENV}={path}: expected a mapping of serve settings")
    unknown = sorted(set(overrides) - {f.name for f in fields(ServeSettings)})
    if unknown:
        raise AidetectorError(f"{path}: unknown serve settings {', '.join(unknown)}")
    return overrides


@dataclass(frozen=True)
class Secrets:
    """Credentials and endpoints that only ever come from the environment."""

    api_key: str | None
    sentry_dsn: str | None
    redis_url: str | None

    @classmethod
    def from_env(cls) -> Secrets:
        """Read API_KEY, SENTRY_DSN and REDIS_URL; empty strings count as unset."""
        return cls(
            api_key=os.environ.get("API_KEY") or None,
            sentry_dsn=os.environ.get("SENTRY_DSN") or None,
            redis_url=os.environ.get("REDIS_URL") or None,
        )
