"""CLI commands for the registry: promote by hand, export, push-hub, summary (wired in by
cli.py; register and promote by policy are stages).

Imports of MLflow and friends happen inside the commands, so `aidetector --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from aidetector.config.schema import RunConfig
from aidetector.registry import CHAMPION


def promote_by_hand(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Set champion to --version, or roll it back (--rollback); the policy is `stages.promote`."""
    name = cfg.registry.name
    if args.rollback:
        from aidetector.registry.aliases import rollback

        previous, restored = rollback(cfg)
        print(f"{name}: champion rolled back from version {previous} to version {restored}")
    else:
        from aidetector.registry.aliases import promote_version

        changed = promote_version(cfg, args.version)
        state = "is now" if changed else "already was"
        print(f"{name}: version {args.version} {state} the champion")


def cmd_export(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Write a registered version's weights, config.yaml and metrics.json to --out."""
    from aidetector.config.tracking import tracking_uri
    from aidetector.registry.export import export_from_uri

    exported = export_from_uri(
        tracking_uri(cfg.mlflow),
        cfg.registry.name,
        Path(args.out),
        alias=None if args.version is not None else args.alias,
        version=args.version,
    )
    which = f"@{exported.alias}" if exported.alias else ""
    print(
        f"exported {exported.readable_name} (version {exported.version}{which}) "
        f"to {exported.out_dir}: {', '.join(exported.files)}"
    )


def cmd_push_hub(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Upload a registered version with a generated model card to the Hugging Face Hub."""
    from aidetector.config.tracking import tracking_uri
    from aidetector.errors import AidetectorError
    from aidetector.registry.export import export_from_uri
    from aidetector.registry.hub import CARD_FILE, build_model_card, push_model_dir

    token = os.environ.get("HF_TOKEN")
    if not token and not args.dry_run:  # fail before any download
        raise AidetectorError("HF_TOKEN is not set; export a Hub write token or pass --dry-run")
    with tempfile.TemporaryDirectory(prefix="aidetector-hub-") as folder:
        exported = export_from_uri(
            tracking_uri(cfg.mlflow),
            cfg.registry.name,
            Path(folder),
            alias=None if args.version is not None else args.alias,
            version=args.version,
        )
        build_model_card(exported).save(Path(folder) / CARD_FILE)
        message = f"{exported.readable_name} (registry version {exported.version})"
        upload = push_model_dir(Path(folder), args.repo_id, token, args.dry_run, message)
    verb = "would upload" if args.dry_run else "uploaded"
    print(f"{verb} {exported.readable_name} (version {exported.version}) to {upload.repo_id}:")
    for path, size in upload.files:
        print(f"  {path} ({size} bytes)")
    if args.dry_run:
        print(f"--- {CARD_FILE} ---")
        print(upload.card)
    elif upload.url:
        print(upload.url)


def cmd_summary(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Print the champion, its suite figures with intervals, and what to run next."""
    import json

    from aidetector.errors import AidetectorError
    from aidetector.registry.summary import promotion_summary

    path = cfg.registry.promote.report
    if not path.is_file():
        raise AidetectorError(f"{path} is missing: run `dvc repro` (or `aidetector promote`)")
    package = Path(args.package)
    tag = json.loads(package.read_text()).get("model_tag") if package.is_file() else None
    print(promotion_summary(json.loads(path.read_text()), tag))


def add_registry_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """Add the options of one registry command to its sub-parser."""
    if name == "promote":
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--version", help="make this version the champion (manual promotion)")
        which.add_argument(
            "--rollback", action="store_true", help="move champion back to the previous champion"
        )
        parser.add_argument(
            "--force", action="store_true", help="replace the champion even with a worse winner"
        )
    if name in ("export", "push-hub"):
        parser.add_argument(
            "--alias", default=CHAMPION, help="version to use, by alias (default: %(default)s)"
        )
        parser.add_argument("--version", help="version to use, by number (overrides --alias)")
    if name == "export":
        parser.add_argument("--out", required=True, help="directory to write the model files to")
    if name == "summary":
        parser.add_argument(
            "--package",
            default="build/package.json",
            help="the package stage's report, for the Bento's tag (default: %(default)s)",
        )
    if name == "push-hub":
        parser.add_argument("--repo-id", required=True, help="Hub repository, ORG/NAME")
        parser.add_argument(
            "--dry-run", action="store_true", help="list the files and show the card; no upload"
        )


Command = Callable[[RunConfig, argparse.Namespace], None]
REGISTRY_COMMANDS: dict[str, tuple[Command, str]] = {
    "export": (cmd_export, "write a registered version (default: champion) to a directory"),
    "push-hub": (cmd_push_hub, "upload a registered version to the Hugging Face Hub"),
    "summary": (cmd_summary, "print the champion, its suite figures and what to run next"),
}
