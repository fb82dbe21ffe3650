"""Release settings: the `release` group of params.yaml, and secrets from the environment only."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, field_validator

from aidetector.config.strict_model import StrictModel
from aidetector.errors import AidetectorError

WEBHOOK_SECRET_ENV = "AIDETECTOR_WEBHOOK_SECRET"
GITHUB_TOKEN_ENV = "GITHUB_TOKEN"
ALERTMANAGER_TOKEN_ENV = "ALERTMANAGER_TOKEN"
# Shorter secrets are refused: a placeholder such as `change-me` must never go live.
MIN_SECRET_LENGTH = 16
REPOSITORY = re.compile(r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$")
HUB_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


class GitHubSettings(StrictModel):
    """Where dispatch events go (`release.github`)."""

    api_url: str
    repository: str | None
    release_event: str
    retrain_event: str
    timeout_s: float = Field(gt=0)


class RetrainSettings(StrictModel):
    """Which Alertmanager alerts start a retrain, and how often at most (`release.retrain`)."""

    alerts: Annotated[tuple[str, ...], Field(strict=False)]
    cooldown_s: float = Field(ge=0)


class HubSettings(StrictModel):
    """Where deploy.yml publishes on Hugging Face after a deployment (`release.hub`)."""

    model_repo: str | None
    space: str | None

    @field_validator("model_repo", "space")
    @classmethod
    def _org_name(cls, value: str | None) -> str | None:
        if value is not None and not HUB_REPO.match(value):
            raise ValueError(f"expected ORG/NAME or null, got {value!r}")
        return value


class ReleaseSettings(StrictModel):
    """The webhook receiver and `webhook install` (`release`, conf/release/)."""

    registered_model: str
    alias: str
    webhook_name: str
    webhook_url: str
    host: str
    port: int = Field(ge=1, le=65535)
    max_age_s: int = Field(ge=1)
    replay_memory: int = Field(ge=1)
    max_body_bytes: int = Field(ge=1024)
    github: GitHubSettings
    retrain: RetrainSettings
    hub: HubSettings

    def repository(self) -> str:
        """Return github.repository, or a one-line error if it is unset or not OWNER/REPO."""
        repository = self.github.repository
        if not repository or not REPOSITORY.match(repository):
            raise AidetectorError(
                f"release.github.repository is {repository!r}; set it to OWNER/REPO "
                f"(e.g. `aidetector webhook serve release.github.repository=acme/detector`)"
            )
        return repository


def _secrets(environ: Mapping[str, str], name: str, required: bool) -> tuple[str, ...]:
    """Return the comma-separated secrets of one variable; the error never shows a value."""
    raw = environ.get(name, "").strip()
    if not raw:
        if required:
            raise AidetectorError(
                f"{name} is empty or unset; generate one with `openssl rand -hex 32`"
            )
        return ()
    values = tuple(part.strip() for part in raw.split(","))
    for index, value in enumerate(values, start=1):
        if len(value) < MIN_SECRET_LENGTH:
            raise AidetectorError(
                f"{name}: entry {index} has {len(value)} characters; secrets need at least "
                f"{MIN_SECRET_LENGTH} (generate one with `openssl rand -hex 32`)"
            )
    return values


@dataclass(frozen=True, repr=False)
class ReleaseSecrets:
    """Credentials of the release loop, read from the environment and never logged."""

    # AIDETECTOR_WEBHOOK_SECRET: the MLflow webhook's HMAC secret; `NEW,OLD` while rotating
    # (install registers the first, the receiver accepts each).
    webhook_secrets: tuple[str, ...]
    # GITHUB_TOKEN: may create repository_dispatch events (contents: write on the repository).
    github_token: str
    # ALERTMANAGER_TOKEN: bearer tokens Alertmanager may send; none turns its route off.
    alertmanager_tokens: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return "ReleaseSecrets(***)"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReleaseSecrets:
        """Read the receiver's secrets; a missing or short one is a one-line error."""
        env = os.environ if environ is None else environ
        return cls(
            webhook_secrets=_secrets(env, WEBHOOK_SECRET_ENV, required=True),
            github_token=_secrets(env, GITHUB_TOKEN_ENV, required=True)[0],
            alertmanager_tokens=_secrets(env, ALERTMANAGER_TOKEN_ENV, required=False),
        )


def webhook_secret_from_env(environ: Mapping[str, str] | None = None) -> str:
    """Return the webhook secret `webhook install` registers: the first of the variable's."""
    env = os.environ if environ is None else environ
    return _secrets(env, WEBHOOK_SECRET_ENV, required=True)[0]
