"""Starts GitHub workflows with `repository_dispatch` events, through GitHub's REST API.

POST {api_url}/repos/OWNER/REPO/dispatches with `event_type` and `client_payload`; GitHub
answers 204 and runs every workflow whose `on.repository_dispatch.types` lists the type.
The token needs write access to the repository's contents (a fine-grained token with
"Contents: read and write" on that one repository). It is sent, never logged.
"""

from __future__ import annotations

from typing import Any

import httpx

from aidetector.config.release import GitHubSettings

API_VERSION = "2022-11-28"
# GitHub refuses a client_payload with more top-level keys than this.
MAX_PAYLOAD_KEYS = 10


class DispatchError(Exception):
    """GitHub did not accept the event: one line, the status and GitHub's own message."""


class GitHubDispatcher:
    """Sends repository_dispatch events to one repository."""

    def __init__(
        self,
        settings: GitHubSettings,
        repository: str,
        token: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = f"{settings.api_url.rstrip('/')}/repos/{repository}/dispatches"
        self._timeout = settings.timeout_s
        self._headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "aidetector-release",
        }
        self._transport = transport

    async def dispatch(self, event_type: str, client_payload: dict[str, Any]) -> int:
        """Send one event; return GitHub's status code, or raise DispatchError."""
        if len(client_payload) > MAX_PAYLOAD_KEYS:
            raise DispatchError(
                f"client_payload has {len(client_payload)} keys; GitHub takes {MAX_PAYLOAD_KEYS}"
            )
        body = {"event_type": event_type, "client_payload": client_payload}
        try:
            async with httpx.AsyncClient(
                timeout=self._timeout, transport=self._transport
            ) as client:
                response = await client.post(self.url, json=body, headers=self._headers)
        except httpx.HTTPError as error:
            raise DispatchError(
                f"GitHub API at {self.url} did not answer ({type(error).__name__})"
            ) from error
        if not response.is_success:
            raise DispatchError(
                f"GitHub API answered {response.status_code} to {self.url}: {_message(response)}"
            )
        return response.status_code


def _message(response: httpx.Response) -> str:
    """Return GitHub's error message (its JSON `message`), or the start of the body."""
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or response.text[:200] or "no message").splitlines()[0]
