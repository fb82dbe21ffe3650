"""CLI commands of the release loop: `webhook install`, `webhook serve`, `space` (cli.py)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from aidetector.config.schema import RunConfig
from aidetector.errors import AidetectorError

WEBHOOK_ACTIONS = ("install", "serve")


def cmd_webhook(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Install the MLflow webhook on the tracking server, or serve the receiver."""
    if args.action == "serve":
        cmd_webhook_serve(cfg)
    else:
        cmd_webhook_install(cfg, args.url, test=not args.no_test)


# Named cmd_*: the CLI's handlers import their code lazily (tests/test_dvc_deps.py).
def cmd_webhook_serve(cfg: RunConfig) -> None:
    """Run the receiver (settings: `release`; secrets: the environment)."""
    from aidetector.config.release import ReleaseSecrets
    from aidetector.release.receiver import serve

    settings = cfg.release
    settings.repository()  # refuse to start without a repository, before any socket opens
    serve(settings, ReleaseSecrets.from_env())


def cmd_webhook_install(cfg: RunConfig, url: str | None, test: bool) -> None:
    """Create or update the release webhook on the tracking server and test it."""
    from aidetector.config.release import webhook_secret_from_env

    secret = webhook_secret_from_env()  # before MLflow is imported: fail in a blink
    from aidetector.config.tracking import tracking_uri
    from aidetector.registry.client import connect, mlflow_errors, redact_uri
    from aidetector.release.install import install_webhook

    uri = tracking_uri(cfg.mlflow)
    if not uri.startswith(("http://", "https://")):
        print(
            f"note: {redact_uri(uri)} is a database; only a `mlflow server` on it delivers "
            f"webhook events"
        )
    client = connect(uri)
    target = url or cfg.release.webhook_url
    with mlflow_errors(uri):
        installed = install_webhook(client, cfg.release.webhook_name, target, secret, test)
    state = "created" if installed.created else "updated"
    print(
        f"{state} webhook {cfg.release.webhook_name!r} ({installed.webhook_id}) on "
        f"{redact_uri(uri)}: model_version_alias.created -> {installed.url}"
    )
    if installed.test is None:
        return
    if not installed.test.success:
        detail = installed.test.error_message or (
            f"answered {installed.test.response_status}: {installed.test.response_body}"
        )
        raise AidetectorError(
            f"the webhook is installed, but the server's signed test event failed: "
            f"{str(detail).splitlines()[0][:300]} (is the receiver running at {target} with "
            f"the same AIDETECTOR_WEBHOOK_SECRET, and does the server allow that URL?)"
        )
    print(f"test event delivered: the receiver answered {installed.test.response_status}")


def cmd_space(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Write the Hugging Face Space folder for an API image; upload it unless --dry-run."""
    from aidetector.release.space import push_space, write_space

    token = os.environ.get("HF_TOKEN")
    if not args.dry_run and not token:  # fail before writing anything
        raise AidetectorError("HF_TOKEN is not set; export a Hub write token or pass --dry-run")
    out = Path(args.out)
    files = write_space(
        out,
        image=args.image,
        model_repo=args.model_repo,
        model_version=args.model_version,
        serve_overrides=Path(args.serve_overrides),
    )
    print(f"wrote the Space folder {out}:")
    for path in files:
        print(f"  {path.relative_to(out)} ({path.stat().st_size} bytes)")
    if args.dry_run:
        print(f"dry run: not uploaded to {args.space_id}")
        return
    url = push_space(out, args.space_id, token, f"serve {args.image}")
    print(f"uploaded to {url}")


def add_release_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """Add the options of one release command to its sub-parser (after its positionals)."""
    if name == "webhook":
        parser.add_argument("--url", help="receiver URL to register (default: release.webhook_url)")
        parser.add_argument(
            "--no-test", action="store_true", help="install without sending a test event"
        )
    if name == "space":
        parser.add_argument("--space-id", required=True, help="Hugging Face Space, ORG/NAME")
        parser.add_argument(
            "--image", required=True, help="API image to serve, REGISTRY/NAME:TAG (not latest)"
        )
        parser.add_argument("--model-repo", help="Hub model repo the Space serves, ORG/NAME")
        parser.add_argument("--model-version", help="registry version inside the image")
        parser.add_argument(
            "--serve-overrides",
            default="deploy/space/serve-overrides.yaml",
            help="serve settings for the Space's CPU hardware (default: %(default)s)",
        )
        parser.add_argument(
            "--out", default="build/space", help="where to write the Space (default: %(default)s)"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="write the folder only; no upload"
        )


Command = Callable[[RunConfig, argparse.Namespace], None]
RELEASE_COMMANDS: dict[str, tuple[Command, str]] = {
    "webhook": (cmd_webhook, "install the MLflow release webhook, or serve its receiver"),
    "space": (cmd_space, "write (and upload) the Hugging Face Space that serves the API image"),
}
