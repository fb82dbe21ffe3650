"""Connects to the MLflow tracking server / registry and turns its failures into one-line errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import requests
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from aidetector.errors import AidetectorError, first_line

REACHABILITY_TIMEOUT_S = 5.0


def redact_uri(uri: str) -> str:
    """Return uri without a password, so that error messages can name it safely."""
    parsed = urlparse(uri)
    if not parsed.password:
        return uri
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
    return parsed._replace(netloc=netloc).geturl()


def check_reachable(uri: str, timeout: float = REACHABILITY_TIMEOUT_S) -> None:
    """Raise AidetectorError if an http(s) tracking server does not answer within timeout.

    MLflow's own client retries a dead server with backoff for minutes; one short
    health probe first gives a clear answer at once.
    """
    if not uri.startswith(("http://", "https://")):
        return  # a database URI: SQLAlchemy reports its own errors
    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout)
    except requests.RequestException as error:
        reason = type(error).__name__
        raise AidetectorError(
            f"MLflow tracking server {redact_uri(uri)} cannot be reached ({reason}); "
            f"start it or fix MLFLOW_TRACKING_URI"
        ) from error


def connect(uri: str) -> MlflowClient:
    """Return a client whose tracking and registry both use uri, after a reachability check."""
    # Progress bars would garble the CLI's output and DVC's logs.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    check_reachable(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextmanager
def mlflow_errors(uri: str) -> Iterator[None]:
    """Turn any MlflowException raised inside the block into a one-line AidetectorError."""
    try:
        yield
    except MlflowException as error:
        raise AidetectorError(f"MLflow at {redact_uri(uri)}: {first_line(error)}") from error


def _does_not_exist(error: MlflowException) -> bool:
    code: str = error.error_code
    return code == "RESOURCE_DOES_NOT_EXIST"


def get_registered_model(client: MlflowClient, name: str) -> RegisteredModel:
    """Return the registered model, or a clear error if there is none by that name."""
    try:
        return client.get_registered_model(name)
    except MlflowException as error:
        if _does_not_exist(error):
            raise AidetectorError(
                f"registered model '{name}' does not exist at "
                f"{redact_uri(client.tracking_uri)}; run `aidetector register` first"
            ) from error
        raise


def get_version(client: MlflowClient, name: str, version: str | int) -> ModelVersion:
    """Return one version of a registered model, or a clear error if it does not exist."""
    get_registered_model(client, name)
    try:
        return client.get_model_version(name, str(version))
    except MlflowException as error:
        if _does_not_exist(error):
            raise AidetectorError(
                f"version {version} of registered model '{name}' does not exist"
            ) from error
        raise


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """Return the version an alias points to, or None when the alias is not set."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        # The REST API answers an unset alias with INVALID_PARAMETER_VALUE, not 404.
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def resolve_version(
    client: MlflowClient, name: str, alias: str | None = None, version: str | int | None = None
) -> ModelVersion:
    """Return the version named by number or alias, with one-line errors for each failure."""
    if version is not None:
        return get_version(client, name, version)
    if not alias:
        raise AidetectorError("name a model version: pass --alias NAME or --version N")
    get_registered_model(client, name)
    found = alias_version(client, name, alias)
    if found is None:
        raise AidetectorError(
            f"alias '{alias}' is not set on registered model '{name}'; set it with "
            f"`aidetector promote` or in the MLflow UI"
        )
    return found
