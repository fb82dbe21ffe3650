"""The `aidetector` command line: prepare, train, evaluate, register, promote and friends.

Every command reads params.yaml (DVC's composed config), or composes conf/ when
Hydra-style overrides are given: `aidetector train model=vit_tiny trainer.max_epochs=2`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from aidetector.config import compose_params, load_config
from aidetector.config_schema import RunConfig
from aidetector.errors import AidetectorError
from aidetector.registry.commands import REGISTRY_COMMANDS, add_registry_arguments
from aidetector.release.commands import RELEASE_COMMANDS, WEBHOOK_ACTIONS, add_release_arguments
from aidetector.scoring.command import SCORE_COMMANDS, add_score_arguments, split_sources

log = logging.getLogger("aidetector")


def cmd_demo_data(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Generate the synthetic demo dataset."""
    from aidetector.data.demo import generate_demo_dataset

    demo = cfg.demo
    generate_demo_dataset(demo.root, demo.n_per_class, demo.image_size, demo.seed)
    print(f"wrote {2 * demo.n_per_class} demo images to {demo.root}")


def cmd_prepare(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Validate, deduplicate and split the image folder; write the decoded cache."""
    from aidetector.data.ingest import ingest_image_folder
    from aidetector.data.prepared import write_prepared
    from aidetector.data.splits import SplitRatios

    dataset = ingest_image_folder(
        cfg.data.root,
        image_size=cfg.data.array_size,
        ratios=SplitRatios(**cfg.data.split.model_dump()),
        seed=cfg.data.seed,
        classes=cfg.data.classes,
        max_file_bytes=cfg.data.max_file_bytes,
        extra_roots=cfg.data.extra_roots,
        mode=cfg.data.preprocessing_mode,
    )
    out_dir = cfg.paths.prepared
    write_prepared(dataset, out_dir)
    report = json.loads((out_dir / "report.json").read_text())
    print(
        json.dumps(
            {
                k: report[k]
                for k in (
                    "split_counts",
                    "skipped_total",
                    "duplicates",
                    "cross_split_duplicates",
                    "data_hash",
                    "extra",
                )
                if k in report
            },
            indent=2,
        )
    )


def cmd_prepare_set(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Ingest the evaluation suite's extra sets (all, or --name) into paths.suite/<name>."""
    from aidetector.data.evalset import ingest_eval_folder, write_eval_set
    from aidetector.data.prepared import read_split_meta

    sets = cfg.evaluate.suite.sets
    names = [args.name] if args.name else sorted(sets)
    for name in names:
        if name not in sets:
            known = ", ".join(sorted(sets)) or "none"
            raise AidetectorError(
                f"suite set '{name}' is not configured (configured: {known}); add it with "
                f"+evaluate.suite.sets.{name}.root=PATH"
            )
    prepared = cfg.paths.prepared
    # Images the models were trained or tuned on; an eval set that holds them is reported.
    seen = {h for split in ("train", "val") for h in read_split_meta(prepared, split).hashes}
    for name in names:
        eval_set = ingest_eval_folder(
            name,
            sets[name].root,
            image_size=cfg.data.array_size,
            classes=cfg.data.classes,
            training_hashes=seen,
            max_file_bytes=cfg.data.max_file_bytes,
            mode=cfg.data.preprocessing_mode,
        )
        out_dir = cfg.paths.suite / name
        write_eval_set(eval_set, out_dir)
        report = eval_set.report
        print(
            f"{name}: {len(eval_set.data)} images, data hash {eval_set.data_hash[:12]}, "
            f"{report.get('overlap_with_training', 0)} also in the training data -> {out_dir}"
        )


def _selected_models(cfg: RunConfig, args: argparse.Namespace) -> list[str]:
    if args.model:
        return [args.model]
    return list(cfg.model)


def cmd_train(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Train each selected model and export it to models/<name>."""
    from aidetector.training.outputs import write_training_outputs
    from aidetector.training.train import train

    for name in _selected_models(cfg, args):
        result = train(cfg, name)
        if result.is_global_zero:
            model_dir = write_training_outputs(result, cfg)
            print(f"{name}: {json.dumps(result.metrics, sort_keys=True)} -> {model_dir}")


def cmd_evaluate(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Evaluate each trained model on the evaluation suite (FP32 and FP16, calibration)."""
    from aidetector.evaluation.evaluate import evaluate_from_config, write_evaluation_outputs

    for name in _selected_models(cfg, args):
        cfg.model_spec(name)  # an unknown --model fails before anything loads
        result = evaluate_from_config(cfg, name)
        out_dir = write_evaluation_outputs(result, cfg, name)
        print(f"{name}: {json.dumps(result.metrics, sort_keys=True)} -> {out_dir}")


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


def _user_error(error: BaseException) -> AidetectorError | None:
    """Return the AidetectorError behind error, looking through Hydra's instantiate wrapper."""
    current: BaseException | None = error
    while current is not None and not isinstance(current, AidetectorError):
        current = current.__cause__
    return current


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; user errors print one line and return a non-zero exit code."""
    parser = build_parser()
    # score's sources may come after its options too; argparse takes one run of positionals.
    args, extra = parser.parse_known_args(argv)
    if extra and (args.command != "score" or any(e.startswith("-") for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # Only our own logger: Lightning, MLflow and DVC configure theirs.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        if args.command == "score":
            args.sources, args.overrides = split_sources([*args.inputs, *extra])
        overrides = list(args.overrides)
        if args.command == "params":
            write_params(overrides, Path(args.output))
        else:
            command, _ = COMMANDS[args.command]
            command(load_config(overrides, Path(args.params)), args)
    except (AidetectorError, InstantiationException) as error:
        user_error = _user_error(error)
        if args.verbose or user_error is None:
            raise
        print(f"aidetector {args.command}: error: {user_error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
