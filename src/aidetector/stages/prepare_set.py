"""DVC stage `prepare_set@NAME`: ingest one extra set of the evaluation suite."""

from __future__ import annotations

import sys

from aidetector.config.schema import RunConfig
from aidetector.data.evalset import ingest_eval_folder, write_eval_set
from aidetector.data.prepared import read_split_meta
from aidetector.errors import AidetectorError
from aidetector.stages.runner import run_stage


def run(cfg: RunConfig, name: str | None = None) -> None:
    """Ingest the suite's extra sets (all, or name) into paths.suite/<name>."""
    sets = cfg.evaluate.suite.sets
    names = [name] if name else sorted(sets)
    for each in names:
        if each not in sets:
            known = ", ".join(sorted(sets)) or "none"
            raise AidetectorError(
                f"suite set '{each}' is not configured (configured: {known}); add it with "
                f"+evaluate.suite.sets.{each}.root=PATH"
            )
    prepared = cfg.paths.prepared
    # Images the models were trained or tuned on; an eval set that holds them is reported.
    seen = {h for split in ("train", "val") for h in read_split_meta(prepared, split).hashes}
    for each in names:
        eval_set = ingest_eval_folder(
            each,
            sets[each].root,
            image_size=cfg.data.array_size,
            classes=cfg.data.classes,
            training_hashes=seen,
            max_file_bytes=cfg.data.max_file_bytes,
            mode=cfg.data.preprocessing_mode,
        )
        out_dir = cfg.paths.suite / each
        write_eval_set(eval_set, out_dir)
        report = eval_set.report
        print(
            f"{each}: {len(eval_set.data)} images, data hash {eval_set.data_hash[:12]}, "
            f"{report.get('overlap_with_training', 0)} also in the training data -> {out_dir}"
        )


def main(argv: list[str] | None = None) -> int:
    """`python -m aidetector.stages.prepare_set [NAME]`."""
    args = sys.argv[1:] if argv is None else argv
    return run_stage("prepare-set", lambda cfg: run(cfg, args[0] if args else None))


if __name__ == "__main__":
    sys.exit(main())
