"""Serving settings: the `serve` node of params.yaml, plus secrets from the environment only."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import limits
import yaml
from pydantic import Field, ValidationError, field_validator

from aidetector.config.strict_model import StrictModel, describe_validation_error
from aidetector.errors import AidetectorError

PARAMS_ENV = "AIDETECTOR_PARAMS"
MODEL_TAG_ENV = "AIDETECTOR_MODEL_TAG"
# A YAML mapping of serve settings that replace the packaged ones (a Kubernetes ConfigMap).
OVERRIDES_ENV = "AIDETECTOR_SERVE_OVERRIDES"


class ServeSettings(StrictModel):
    """Limits, batching and cache settings of the service: the typed `serve` config group.

    Every key of conf/serve/default.yaml is required; an unknown key or a wrong type is an
    error that names the key (see load_serve_settings).
    """

    bento_model: str
    device: str
    precision: str
    gpus: int
    cpu_threads: int
    threshold: float
    # BentoML batching needs room for two requests.
    max_batch_size: int = Field(ge=2)
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
    # Decoded pixels per request, all images together (the per-image cap is max_pixels).
    max_request_pixels: int = Field(ge=1)
    # Images decoded at once per worker; each holds up to ~25 bytes per pixel while it runs.
    decode_concurrency: int = Field(ge=1)
    # /explain calls computed at once per worker (a forward and a backward pass each, in a
    # worker thread, on its own float32 copy of the network); the others wait.
    explain_concurrency: int = Field(ge=1)
    # An over-limit body is read and discarded up to this many bytes, for this long, before
    # the 413, so that clients that send the whole body before reading still see the answer.
    drain_bytes: int = Field(ge=0)
    drain_timeout_s: float = Field(ge=0)
    # YAML gives a list; Pillow's format names are upper case.
    formats: Annotated[tuple[str, ...], Field(strict=False)]
    cache_ttl_s: int
    cache_timeout_s: float
    cache_retry_after_s: float
    warning_interval_s: float
    feedback_memory: int
    feedback_window: int
    # Access (see access.py): start without API_KEY only when this is true.
    allow_anonymous: bool
    # Per feedback source and worker, in the `limits` notation: "60/minute", "5/second;100/hour".
    feedback_rate_limit: str
    # model_accuracy follows feedback only while the window holds labels from this many sources.
    feedback_min_sources: int = Field(ge=1)
    # Where /feedback writes labelled images (a folder or an fsspec URL); "" writes none.
    feedback_store: str
    # Input drift (serving/drift.py): images per worker window, images before scores are
    # published, images between recomputations, and the PSI that logs a warning.
    drift_window: int = Field(ge=1)
    drift_min_samples: int = Field(ge=1)
    drift_update_every: int = Field(ge=1)
    drift_psi_alert: float = Field(gt=0)

    @field_validator("formats")
    @classmethod
    def _upper_case(cls, formats: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(name.upper() for name in formats)

    @field_validator("feedback_rate_limit")
    @classmethod
    def _a_rate(cls, rate: str) -> str:
        try:
            limits.parse_many(rate)
        except ValueError:
            raise ValueError(
                f"expected a rate such as 60/minute or 5/second;100/hour, got {rate!r}"
            ) from None
        return rate

    @property
    def feedback_rates(self) -> list[limits.RateLimitItem]:
        """The parsed feedback_rate_limit."""
        return limits.parse_many(self.feedback_rate_limit)

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "serve config") -> ServeSettings:
        """Build from the `serve` mapping; a missing, unknown or mistyped key is one-line error."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            _, line = describe_validation_error(error, cls, prefix=("serve",))
            raise AidetectorError(f"{source}: {line}") from error

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
    overrides = load_overrides(Path(overrides_file)) if overrides_file else {}
    serve.update(overrides)
    try:
        return ServeSettings.model_validate(serve)
    except ValidationError as error:
        loc, line = describe_validation_error(error, ServeSettings, prefix=("serve",))
        # A key the overrides file set (or mistyped) is that file's problem.
        source = overrides_file if loc and loc[0] in overrides else path
        raise AidetectorError(f"{source}: {line}") from error


def load_overrides(path: Path) -> dict[str, Any]:
    """A mapping of known serve settings; an unknown key is an error, not a silent no-op."""
    if not path.is_file():
        raise AidetectorError(f"{OVERRIDES_ENV}={path}: file not found")
    overrides = yaml.safe_load(path.read_text()) or {}
    if not isinstance(overrides, dict):
        raise AidetectorError(f"{OVERRIDES_ENV}={path}: expected a mapping of serve settings")
    unknown = sorted(set(overrides) - set(ServeSettings.model_fields))
    if unknown:
        raise AidetectorError(f"{path}: unknown serve settings {', '.join(unknown)}")
    return overrides


# Shorter keys are refused: a placeholder such as `change-me` must never go live.
MIN_KEY_LENGTH = 16
SOURCE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class Secrets:
    """Credentials and endpoints that only ever come from the environment."""

    # API_KEY: keys that may predict; a comma-separated list, so that two work during rotation.
    api_keys: tuple[str, ...]
    # FEEDBACK_API_KEYS: `source:key,...`; a feedback key may predict and send feedback, and its
    # source names the labelling client (two keys of one source rotate; they share its limit).
    feedback_keys: dict[str, str] = field(default_factory=dict)  # key -> source
    sentry_dsn: str | None = None
    redis_url: str | None = None

    @classmethod
    def from_env(cls) -> Secrets:
        """Read API_KEY, FEEDBACK_API_KEYS, SENTRY_DSN and REDIS_URL; empty counts as unset.

        A malformed or short key is an AidetectorError that names the variable and the entry,
        never the key itself.
        """
        return cls(
            api_keys=parse_api_keys(os.environ.get("API_KEY", "")),
            feedback_keys=parse_feedback_keys(os.environ.get("FEEDBACK_API_KEYS", "")),
            sentry_dsn=os.environ.get("SENTRY_DSN") or None,
            redis_url=os.environ.get("REDIS_URL") or None,
        )


def _check_key(key: str, where: str) -> str:
    if len(key) < MIN_KEY_LENGTH:
        raise AidetectorError(
            f"{where} has {len(key)} characters; keys need at least {MIN_KEY_LENGTH} "
            f"(generate one with `openssl rand -hex 32`)"
        )
    return key


def parse_api_keys(text: str) -> tuple[str, ...]:
    """Return the keys of a comma-separated API_KEY (blanks around commas ignored)."""
    entries = [entry.strip() for entry in text.split(",")]
    return tuple(
        _check_key(entry, f"API_KEY entry {i}") for i, entry in enumerate(entries, 1) if entry
    )


def parse_feedback_keys(text: str) -> dict[str, str]:
    """Return {key: source} from a comma-separated FEEDBACK_API_KEYS of `source:key` entries."""
    keys: dict[str, str] = {}
    for i, entry in enumerate((e.strip() for e in text.split(",")), 1):
        if not entry:
            continue
        source, colon, key = entry.partition(":")
        where = f"FEEDBACK_API_KEYS entry {i}"
        if not colon or not SOURCE_NAME.match(source):
            raise AidetectorError(
                f"{where} is not SOURCE:KEY with a source of letters, digits, '.', '_' or '-'"
            )
        keys[_check_key(key, where)] = source
    return keys
