"""The `aidetector score` command (wired in by cli.py): sources, model, engine, output.

SOURCE arguments are files, folders or fsspec URLs; an argument of the form key=value that
is not an existing path is a Hydra override (`serve.threshold=0.6`, `registry.name=...`),
as for every other command. The threshold and the input limits are serving's (`serve`),
so bulk verdicts match the service's. Only this module is imported with the CLI (every DVC
stage runs through cli.py): the scoring code is imported when the command runs.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from aidetector.config.schema import RunConfig
from aidetector.errors import AidetectorError
from aidetector.registry import CHAMPION

OVERRIDE = re.compile(r"^[+~]{0,2}[A-Za-z_][\w.]*=")
DEFAULT_BATCH_SIZE = 32
# Decoding a 32 px PNG takes ~0.2 ms and a 12 Mpx JPEG ~100 ms; a few workers keep a GPU fed
# for typical photos without taking every core from a CPU forward pass.
DEFAULT_WORKERS = min(4, os.cpu_count() or 1)


def split_sources(arguments: Sequence[str]) -> tuple[list[str], list[str]]:
    """Return (sources, Hydra overrides) of score's positional arguments."""
    sources: list[str] = []
    overrides: list[str] = []
    for argument in arguments:
        is_override = OVERRIDE.match(argument) and not Path(argument).exists()
        (overrides if is_override else sources).append(argument)
    return sources, overrides


def cmd_score(cfg: RunConfig, args: argparse.Namespace) -> None:
    """Score files, folders or URLs with a registered model (default: the champion)."""
    from aidetector.batch.decode import InputLimits
    from aidetector.batch.local import score_local
    from aidetector.batch.model import local_model, registered_model
    from aidetector.batch.options import ScoreOptions
    from aidetector.batch.sources import list_sources
    from aidetector.batch.writers import output_format

    if output_format(args.out) != ".parquet" and args.engine == "ray":
        raise AidetectorError(
            f"--engine ray writes Parquet: give --out NAME.parquet, not {args.out}"
        )
    paths = list_sources(args.sources, args.limit)
    options = ScoreOptions(
        threshold=cfg.serve.threshold,
        limits=InputLimits.from_serve(cfg.serve),
        batch_size=args.batch_size,
        workers=args.workers if args.workers is not None else DEFAULT_WORKERS,
        device=cfg.serve.device,
        precision=cfg.serve.precision,
    )
    with tempfile.TemporaryDirectory(prefix="aidetector-score-") as workdir:
        if args.model_dir:
            model = local_model(Path(args.model_dir))
        else:
            model = registered_model(cfg, Path(workdir), alias=args.alias, version=args.version)
        if args.engine == "ray":
            from aidetector.batch.ray_engine import score_with_ray

            summary = score_with_ray(paths, model, args.out, options, actors=args.workers)
        else:
            summary = score_local(paths, model, args.out, options)
    print(summary.describe())


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {text}")
    return value


def add_score_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """Add score's positional sources and options to its sub-parser."""
    if name != "score":
        return
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="SOURCE",
        help="image files, folders (recursive) or fsspec URLs such as s3://bucket/prefix; "
        "key=value arguments are Hydra overrides, e.g. serve.threshold=0.6",
    )
    parser.add_argument(
        "--out", required=True, help="results: NAME.parquet (a dataset directory), .csv or .jsonl"
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--alias", default=CHAMPION, help="registered version by alias (default: %(default)s)"
    )
    which.add_argument("--version", help="registered version by number")
    which.add_argument("--model-dir", help="a model directory instead of the registry")
    parser.add_argument(
        "--engine", choices=("local", "ray"), default="local", help="default: %(default)s"
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE, help="default: %(default)s"
    )
    parser.add_argument(
        "--workers",
        type=non_negative_int,
        help=f"local: decoding processes (default {DEFAULT_WORKERS}, 0 decodes in-process); "
        "ray: model actors (default: one per GPU, else 1)",
    )
    parser.add_argument(
        "--limit", type=positive_int, help="score only the first N listed files (sorted order)"
    )


Command = Callable[[RunConfig, argparse.Namespace], None]
SCORE_COMMANDS: dict[str, tuple[Command, str]] = {
    "score": (cmd_score, "score files, folders or buckets of images offline (bulk scoring)"),
}
