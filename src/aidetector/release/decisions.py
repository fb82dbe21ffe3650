"""What an event means for the release loop: release, retrain, or ignore, and why.

Pure functions of the (already authenticated) event and the settings, so that every rule is
tested without a server: only a move of the configured alias on the configured registered
model releases, and only a firing retrain alert, outside the cooldown, retrains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from aidetector.config.release import ReleaseSettings

ALIAS_CREATED = ("model_version_alias", "created")


class PayloadError(ValueError):
    """An authenticated request whose body is not the event it claims to be."""


@dataclass(frozen=True)
class Decision:
    """What to do: the action, a sentence saying why, and the dispatch event's payload."""

    action: Literal["release", "retrain", "ignore"]
    reason: str
    payload: dict[str, str] = field(default_factory=dict)


class _Lenient(BaseModel):
    # Senders add fields over time; only the ones read here must be present and typed.
    model_config = ConfigDict(extra="ignore", frozen=True)


class MlflowEvent(_Lenient):
    """MLflow's webhook envelope: `entity`, `action`, `timestamp`, and the event's `data`."""

    entity: str
    action: str
    timestamp: str | None = None
    data: dict[str, Any]


class AliasCreated(_Lenient):
    """mlflow.webhooks.types.ModelVersionAliasCreatedPayload."""

    name: str
    alias: str
    version: str


class Alert(_Lenient):
    """One alert of an Alertmanager notification."""

    status: str
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    fingerprint: str | None = None


class AlertmanagerNotification(_Lenient):
    """Alertmanager's webhook body (version 4): the group's status and its alerts."""

    version: str
    status: str
    groupKey: str  # noqa: N815 - Alertmanager's key
    alerts: list[Alert]


def parse(model: type[_Lenient], body: bytes | dict[str, Any]) -> Any:
    """Return body validated as model, or a PayloadError naming the first problem."""
    try:
        if isinstance(body, bytes):
            return model.model_validate_json(body)
        return model.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise PayloadError(f"not an {model.__name__}: {where}: {first['msg']}") from error


def decide_mlflow(body: bytes, settings: ReleaseSettings, delivery_id: str) -> Decision:
    """Release when the configured alias moved on the configured model; otherwise ignore."""
    event: MlflowEvent = parse(MlflowEvent, body)
    if (event.entity, event.action) != ALIAS_CREATED:
        return Decision("ignore", f"event {event.entity}.{event.action} is not an alias move")
    moved: AliasCreated = parse(AliasCreated, event.data)
    if moved.name != settings.registered_model:
        return Decision(
            "ignore",
            f"registered model {moved.name!r} is not {settings.registered_model!r}",
            _alias_payload(moved, delivery_id),
        )
    if moved.alias != settings.alias:
        return Decision(
            "ignore",
            f"alias {moved.alias!r} is not {settings.alias!r}",
            _alias_payload(moved, delivery_id),
        )
    return Decision(
        "release",
        f"{moved.name} version {moved.version} is now @{moved.alias}",
        _alias_payload(moved, delivery_id),
    )


def _alias_payload(moved: AliasCreated, delivery_id: str) -> dict[str, str]:
    return {
        "registered_model": moved.name,
        "version": moved.version,
        "alias": moved.alias,
        "delivery_id": delivery_id,
        "source": "mlflow-webhook",
    }


def decide_alertmanager(
    body: bytes, settings: ReleaseSettings, last_retrain: float | None, now: float
) -> Decision:
    """Retrain when a configured alert fires and no retrain was sent within the cooldown."""
    notification: AlertmanagerNotification = parse(AlertmanagerNotification, body)
    names = sorted({alert.labels.get("alertname", "") for alert in notification.alerts})
    firing = sorted(
        {
            alert.labels.get("alertname", "")
            for alert in notification.alerts
            if alert.status == "firing" and alert.labels.get("alertname") in settings.retrain.alerts
        }
    )
    payload = {
        "registered_model": settings.registered_model,
        "alerts": ",".join(firing or names),
        "group_key": notification.groupKey[:200],
        "source": "alertmanager",
    }
    if not firing:
        return Decision(
            "ignore",
            f"no retrain alert firing (got {notification.status} {', '.join(names) or 'none'}; "
            f"retrain alerts: {', '.join(settings.retrain.alerts)})",
            payload,
        )
    if last_retrain is not None and now - last_retrain < settings.retrain.cooldown_s:
        return Decision(
            "ignore",
            f"a retrain was sent {now - last_retrain:.0f} s ago; "
            f"cooldown {settings.retrain.cooldown_s:.0f} s",
            payload,
        )
    return Decision("retrain", f"{', '.join(firing)} firing", payload)
