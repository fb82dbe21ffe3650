"""`aidetector webhook serve` and `webhook install` refuse to start without what they need,
with one line naming it (and never a secret's value)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from aidetector.config.release import ReleaseSecrets
from conftest import PROJECT_ROOT

from .conftest import GITHUB_TOKEN, WEBHOOK_SECRET


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AIDETECTOR_WEBHOOK_SECRET", "GITHUB_TOKEN", "ALERTMANAGER_TOKEN")
    }
    return subprocess.run(
        [sys.executable, "-m", "aidetector.cli", *args],
        cwd=PROJECT_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    for fragment in fragments:
        assert fragment in line
    return line


def test_serve_needs_the_repository() -> None:
    result = run_cli(
        "webhook", "serve", AIDETECTOR_WEBHOOK_SECRET=WEBHOOK_SECRET, GITHUB_TOKEN=GITHUB_TOKEN
    )
    assert_one_line_error(result, "release.github.repository is None", "OWNER/REPO")


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"GITHUB_TOKEN": GITHUB_TOKEN}, "AIDETECTOR_WEBHOOK_SECRET is empty or unset"),
        ({"AIDETECTOR_WEBHOOK_SECRET": WEBHOOK_SECRET}, "GITHUB_TOKEN is empty or unset"),
        (
            {"AIDETECTOR_WEBHOOK_SECRET": "change-me", "GITHUB_TOKEN": GITHUB_TOKEN},
            "AIDETECTOR_WEBHOOK_SECRET: entry 1 has 9 characters",
        ),
    ],
)
def test_serve_needs_its_secrets(env: dict[str, str], fragment: str) -> None:
    result = run_cli("webhook", "serve", "release.github.repository=acme/detector", **env)
    line = assert_one_line_error(result, fragment)
    assert "change-me" not in line


def test_install_needs_the_secret() -> None:
    result = run_cli("webhook", "install", MLFLOW_TRACKING_URI="http://127.0.0.1:9")
    assert_one_line_error(result, "AIDETECTOR_WEBHOOK_SECRET is empty or unset")


def test_install_says_when_the_server_is_down() -> None:
    result = run_cli(
        "webhook",
        "install",
        MLFLOW_TRACKING_URI="http://127.0.0.1:9",
        AIDETECTOR_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    assert_one_line_error(result, "cannot be reached")


def test_secrets_rotate_and_never_show_in_repr() -> None:
    secrets = ReleaseSecrets.from_env(
        {
            "AIDETECTOR_WEBHOOK_SECRET": f"{WEBHOOK_SECRET}, {'n' * 20}",
            "GITHUB_TOKEN": GITHUB_TOKEN,
            "ALERTMANAGER_TOKEN": "",
        }
    )
    assert secrets.webhook_secrets == (WEBHOOK_SECRET, "n" * 20)
    assert secrets.alertmanager_tokens == ()
    assert WEBHOOK_SECRET not in repr(secrets) and GITHUB_TOKEN not in repr(secrets)
