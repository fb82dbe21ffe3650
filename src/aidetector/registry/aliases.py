"""The `champion` alias and its history: set it, record who set it, roll it back.

The history is a JSON list in the registered model's `champion_history` tag, oldest
first; its last entry is the current champion. A change made in the MLflow UI does
not write the tag, so every change here first appends the alias's actual version if
it differs from the last entry ("ui"). Rollback pops the last entry.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from mlflow.tracking import MlflowClient

from aidetector.config.schema import RunConfig
from aidetector.config.tracking import tracking_uri
from aidetector.errors import AidetectorError
from aidetector.registry import CHALLENGER, CHAMPION
from aidetector.registry.client import (
    alias_version,
    connect,
    get_registered_model,
    get_version,
    mlflow_errors,
)

HISTORY_TAG = "champion_history"
MAX_HISTORY = 200  # keeps the tag far below MLflow's 100 kB tag limit


def read_history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """Return the champion history of a registered model, oldest first."""
    raw = get_registered_model(client, name).tags.get(HISTORY_TAG)
    try:
        history = json.loads(raw) if raw else []
    except json.JSONDecodeError:
        history = []  # hand-edited tag; start again rather than fail a promotion
    return [entry for entry in history if isinstance(entry, dict) and "version" in entry]


def _write_history(client: MlflowClient, name: str, history: list[dict[str, Any]]) -> None:
    value = json.dumps(history[-MAX_HISTORY:], separators=(",", ":"))
    client.set_registered_model_tag(name, HISTORY_TAG, value)


def _entry(version: str, by: str, reason: str = "") -> dict[str, Any]:
    at = datetime.now(UTC).isoformat(timespec="seconds")
    return {"version": str(version), "by": by, "at": at, "reason": reason}


def synced_history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """Return the history with the alias's current version appended if the UI moved it."""
    history = read_history(client, name)
    current = alias_version(client, name, CHAMPION)
    if current is not None and (not history or history[-1]["version"] != str(current.version)):
        history.append(_entry(current.version, "ui", "set outside aidetector"))
    return history


def set_champion(client: MlflowClient, name: str, version: str, by: str, reason: str = "") -> bool:
    """Point `champion` at version and record it; return False if it already pointed there."""
    version = str(get_version(client, name, version).version)
    history = synced_history(client, name)
    if history and history[-1]["version"] == version:
        client.set_registered_model_alias(name, CHAMPION, version)  # the alias may be missing
        _write_history(client, name, history)
        return False
    client.set_registered_model_alias(name, CHAMPION, version)
    history.append(_entry(version, by, reason))
    _write_history(client, name, history)
    drop_self_challenge(client, name)
    return True


def set_challenger(client: MlflowClient, name: str, version: str) -> None:
    """Point `challenger` at version (never at the champion)."""
    client.set_registered_model_alias(name, CHALLENGER, str(version))
    drop_self_challenge(client, name)


def drop_self_challenge(client: MlflowClient, name: str) -> None:
    """Remove `challenger` when it points at the champion: a version cannot challenge itself."""
    champion = alias_version(client, name, CHAMPION)
    challenger = alias_version(client, name, CHALLENGER)
    if champion and challenger and champion.version == challenger.version:
        client.delete_registered_model_alias(name, CHALLENGER)


def rollback_champion(client: MlflowClient, name: str) -> tuple[str, str]:
    """Move `champion` back to the previous champion; return (from_version, to_version)."""
    history = synced_history(client, name)
    if len(history) < 2:
        raise AidetectorError(
            f"registered model '{name}' has no previous champion to roll back to "
            f"({HISTORY_TAG} has {len(history)} entr{'y' if len(history) == 1 else 'ies'})"
        )
    current = history.pop()["version"]
    previous = str(history[-1]["version"])
    get_version(client, name, previous)  # a deleted version cannot become champion again
    client.set_registered_model_alias(name, CHAMPION, previous)
    _write_history(client, name, history)
    drop_self_challenge(client, name)
    return str(current), previous


# The CLI's by-hand moves live here, away from the policy and its evaluation suite, so that
# `aidetector promote --rollback` in an incident does not wait for torch to import.
def promote_version(cfg: RunConfig, version: str) -> bool:
    """Make version the champion by hand; return False if it already was."""
    uri = tracking_uri(cfg.mlflow)
    client = connect(uri)
    with mlflow_errors(uri):
        return set_champion(client, cfg.registry.name, version, by="manual")


def rollback(cfg: RunConfig) -> tuple[str, str]:
    """Move champion back to the previous champion; return (from_version, to_version)."""
    uri = tracking_uri(cfg.mlflow)
    client = connect(uri)
    with mlflow_errors(uri):
        return rollback_champion(client, cfg.registry.name)
