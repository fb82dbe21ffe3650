"""Registers the release webhook on the MLflow tracking server, with its secret, and tests it.

MLflow 3 keeps webhooks in the registry's SQL store (SQLite works; the file store has none)
and the tracking *server* delivers them, so the events need a `mlflow server`. Under the
basic-auth app only an admin may manage webhooks. The server refuses plain-http and private
URLs unless it runs with MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https and
MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true (the in-cluster receiver needs both), and it encrypts
secrets with MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY, which must be the same for every worker
and survive restarts (docs/deployment.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from mlflow.entities.webhook import Webhook, WebhookTestResult
from mlflow.tracking import MlflowClient

from aidetector.errors import AidetectorError

ALIAS_CREATED_EVENT: Final[Literal["model_version_alias.created"]] = "model_version_alias.created"
DESCRIPTION = "aidetector release loop: alias moves -> `aidetector webhook serve` -> deploy.yml"


@dataclass(frozen=True)
class InstalledWebhook:
    """The webhook as installed: its id, URL, whether it is new, and the test delivery."""

    webhook_id: str
    url: str
    created: bool
    test: WebhookTestResult | None


def webhooks_named(client: MlflowClient, name: str) -> list[Webhook]:
    """Return every webhook on the server with this name (all pages)."""
    found: list[Webhook] = []
    token: str | None = None
    while True:
        page = client.list_webhooks(max_results=100, page_token=token)
        found += [webhook for webhook in page if webhook.name == name]
        token = page.token
        if not token:
            return found


def install_webhook(
    client: MlflowClient, name: str, url: str, secret: str, test: bool = True
) -> InstalledWebhook:
    """Create the webhook, or update the one of this name; then send it a test event."""
    existing = webhooks_named(client, name)
    if len(existing) > 1:
        ids = ", ".join(webhook.webhook_id for webhook in existing)
        raise AidetectorError(
            f"{len(existing)} webhooks are named {name!r} ({ids}); delete all but one "
            f"(MlflowClient().delete_webhook(ID)) and install again"
        )
    if existing:
        webhook = client.update_webhook(
            existing[0].webhook_id,
            url=url,
            events=[ALIAS_CREATED_EVENT],
            description=DESCRIPTION,
            secret=secret,
            status="ACTIVE",
        )
    else:
        webhook = client.create_webhook(
            name, url, events=[ALIAS_CREATED_EVENT], description=DESCRIPTION, secret=secret
        )
    # MLflow's test event (example_model / example_alias) is signed like a real one: the
    # receiver verifies it and answers 200, ignored.
    result = client.test_webhook(webhook.webhook_id) if test else None
    return InstalledWebhook(webhook.webhook_id, webhook.url, not existing, result)
