"""The `aidetector` command line: prepare, train, evaluate, register, promote and friends.

Every command reads params.yaml (DVC's composed config), or composes conf/ when
Hydra-style overrides are given: `aidetector train model=vit_tiny trainer.max_epochs=2`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from omegaconf import OmegaConf

from aidetector.batch.command import SCORE_COMMANDS, add_score_arguments, split_sources
from aidetector.config.loading import compose_params, load_config
from aidetector.config.schema import RunConfig
from aidetector.registry.commands import REGISTRY_COMMANDS, add_registry_arguments, promote_by_hand
from aidetector.release.commands import RELEASE_COMMANDS, WEBHOOK_ACTIONS, add_release_arguments
from aidetector.stages.runner import configure_logging, report_errors


def cmd_demo_data(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Generate the synthetic demo dataset."""
    from aidetector.stages.demo_data import run

    run(cfg)


def cmd_prepare(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Validate, deduplicate and split the image folder; write the decoded cache."""
    from aidetector.stages.prepare import run

    run(cfg)


def cmd_prepare_set(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Ingest the evaluation suite's extra sets (all, or --name) into paths.suite/<name>."""
    from aidetector.stages.prepare_set import run

    run(cfg, args.name)


def cmd_train(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Train each selected model and export it to models/<name>."""
    from aidetector.stages.train import run

    run(cfg, [args.model] if args.model else [])


def cmd_evaluate(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Evaluate each trained model on the evaluation suite (FP32 and FP16, calibration)."""
    from aidetector.stages.evaluate import run

    run(cfg, [args.model] if args.model else [])


def cmd_register(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Register every trained model as FP32 and FP16 versions in the MLflow Model Registry."""
    from aidetector.stages.register import run

    run(cfg)


def cmd_promote(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Promote by policy, or set champion by hand (--version N), or roll it back (--rollback)."""
    if args.rollback or args.version is not None:
        promote_by_hand(cfg, args)
    else:
        from aidetector.stages.promote import run

        run(cfg, force=args.force)


def write_params(overrides: list[str], output: Path) -> None:
    """Write the composed, validated config to params.yaml, exactly as `dvc exp run -S` would."""
    # The composed YAML itself, not the typed model: same keys, order and values as DVC's.
    output.write_text(OmegaConf.to_yaml(compose_params(overrides)))
    print(f"wrote {output}")


Command = Callable[[RunConfig, argparse.Namespace], None]
COMMANDS: dict[str, tuple[Command, str]] = {
    "demo-data": (cmd_demo_data, "generate the synthetic demo dataset"),
    "prepare": (cmd_prepare, "validate, deduplicate, split and cache an image folder"),
    "train": (cmd_train, "train the configured models (Lightning, tracked in MLflow)"),
    "prepare-set": (cmd_prepare_set, "prepare the evaluation suite's extra image folders"),
    "evaluate": (cmd_evaluate, "evaluate trained models on the evaluation suite"),
    "register": (cmd_register, "register trained models (FP32 + FP16) in the MLflow registry"),
    "promote": (cmd_promote, "set the champion alias: by policy, by hand, or roll it back"),
    **REGISTRY_COMMANDS,
    **RELEASE_COMMANDS,
    **SCORE_COMMANDS,
}
PARAMS_HELP = "compose conf/ with overrides into params.yaml"


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with one sub-command per pipeline step."""
    parser = argparse.ArgumentParser(
        prog="aidetector",
        description="Train, evaluate and ship real-vs-AI-generated image detectors.",
        epilog="Overrides use Hydra syntax, e.g. model=vit_small trainer.max_epochs=5.",
    )
    parser.add_argument(
        "--params", default="params.yaml", help="composed config (default: %(default)s)"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show debug logs and tracebacks"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {name: help_text for name, (_, help_text) in COMMANDS.items()}
    for name, help_text in {**helps, "params": PARAMS_HELP}.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == "webhook":  # before the overrides, which would take any word
            sub.add_argument("action", choices=WEBHOOK_ACTIONS, help="what to do")
        if name != "score":  # score's positionals are sources and overrides together
            sub.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=vit_tiny")
        if name in ("train", "evaluate"):
            sub.add_argument("--model", help="only this configured model (default: all)")
        if name == "prepare-set":
            sub.add_argument("--name", help="only this configured set (default: all)")
        if name == "params":
            sub.add_argument("--output", default="params.yaml", help="where to write")
        add_registry_arguments(name, sub)
        add_release_arguments(name, sub)
        add_score_arguments(name, sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; user errors print one line and return a non-zero exit code."""
    parser = build_parser()
    # score's sources may come after its options too; argparse takes one run of positionals.
    args, extra = parser.parse_known_args(argv)
    if extra and (args.command != "score" or any(e.startswith("-") for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    configure_logging(args.verbose)

    def run() -> None:
        if args.command == "score":
            args.sources, args.overrides = split_sources([*args.inputs, *extra])
        overrides = list(args.overrides)
        if args.command == "params":
            write_params(overrides, Path(args.output))
        else:
            command, _ = COMMANDS[args.command]
            command(load_config(overrides, Path(args.params)), args)

    return report_errors(args.command, run, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
