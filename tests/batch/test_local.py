"""The local engine: one row per file, serving's verdicts, error rows, resume, formats."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import fsspec
import numpy as np
import pytest

from aidetector.batch.local import MAX_CPU_STREAMS, StreamLayout, score_local
from aidetector.batch.model import local_model
from aidetector.batch.options import ScoreOptions
from aidetector.batch.scorer import COLUMNS
from aidetector.batch.sources import list_sources
from aidetector.batch.writers import JOURNAL_PREFIX
from aidetector.labels import FAKE, REAL
from aidetector.serving.model_runtime import InferenceEngine

from .conftest import ImageFolder, by_path, read_results, write_image_folder


def serving_outputs(model_dir: Path, files: list[Path]) -> np.ndarray:
    """(P(FAKE), domain score) per file from serving's engine on the same bytes."""
    engine = InferenceEngine(model_dir, device="cpu")
    arrays = np.stack([engine.preprocessing.bytes_to_array(f.read_bytes()) for f in files])
    return engine.predict(arrays)


def score_folder(folder: Path, model_dir: Path, out: Path, options: ScoreOptions) -> object:
    return score_local(list_sources([str(folder)]), local_model(model_dir), str(out), options)


def test_every_file_gets_a_row_with_servings_verdict_or_its_error(
    tmp_path: Path, model_dir: Path, image_folder: ImageFolder, options: ScoreOptions
) -> None:
    out = tmp_path / "results.jsonl"
    summary = score_folder(image_folder.root, model_dir, out, options)
    rows = by_path(read_results(out), image_folder.root)
    assert sorted(rows) == image_folder.scored_files  # hidden files are not listed
    assert (summary.scored, summary.errors, summary.skipped) == (  # type: ignore[attr-defined]
        len(image_folder.good) + len(image_folder.out_of_domain),
        len(image_folder.bad),
        0,
    )
    for row in rows.values():
        assert list(row) == list(COLUMNS)
        data = Path(str(row["path"])).read_bytes()
        assert row["sha256"] == hashlib.sha256(data).hexdigest()
        assert row["model_name"] == "vit_tiny" and row["model_precision"] == "fp32"
        assert str(row["model_version"]).startswith("local-")

    for name, fragment in image_folder.bad.items():
        row = rows[name]
        assert fragment in str(row["error"]), row["error"]
        assert row["label"] is None and row["prob_fake"] is None

    scored = [*image_folder.good, *image_folder.out_of_domain]
    expected = serving_outputs(model_dir, [image_folder.root / name for name in scored])
    for name, (prob_fake, _) in zip(scored, expected.tolist(), strict=True):
        row = rows[name]
        assert row["error"] is None
        assert row["prob_fake"] == prob_fake  # the same engine, bit for bit
        assert row["label"] == (FAKE if prob_fake >= options.threshold else REAL)
        assert row["confidence"] == max(prob_fake, 1.0 - prob_fake)
    for name in image_folder.good:
        assert (rows[name]["width"], rows[name]["height"]) == (48, 40)
        assert rows[name]["in_domain"] is True and rows[name]["verdict"] == rows[name]["label"]
    for name in image_folder.out_of_domain:
        assert rows[name]["in_domain"] is False and rows[name]["verdict"] == "UNCERTAIN"
        assert rows[name]["domain_reason"]
    assert (rows["huge_side.jpg"]["width"], rows["huge_side.jpg"]["height"]) == (384, 320)


def test_decoding_workers_give_the_same_rows_as_in_process_decoding(
    tmp_path: Path, model_dir: Path, image_folder: ImageFolder, options: ScoreOptions
) -> None:
    in_process, workers = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    score_folder(image_folder.root, model_dir, in_process, replace(options, workers=0))
    score_folder(image_folder.root, model_dir, workers, replace(options, workers=2, batch_size=5))
    assert read_results(in_process) == read_results(workers)


def test_many_inference_streams_write_the_rows_of_one_stream_in_input_order(
    tmp_path: Path,
    model_dir: Path,
    image_folder: ImageFolder,
    options: ScoreOptions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one, many = tmp_path / "one.jsonl", tmp_path / "many.jsonl"
    monkeypatch.setattr(StreamLayout, "for_device", classmethod(lambda cls, _: cls(1, 1)))
    score_folder(image_folder.root, model_dir, one, replace(options, batch_size=1))
    monkeypatch.setattr(StreamLayout, "for_device", classmethod(lambda cls, _: cls(4, 1)))
    score_folder(image_folder.root, model_dir, many, replace(options, batch_size=1))
    rows = read_results(many)
    assert rows == read_results(one)
    assert [row["path"] for row in rows] == list_sources([str(image_folder.root)])


@pytest.mark.parametrize(
    ("cores", "layout"),
    [(1, StreamLayout(1, 1)), (2, StreamLayout(2, 1)), (32, StreamLayout(MAX_CPU_STREAMS, 4))],
)
def test_the_cpu_gets_a_single_thread_stream_per_core_up_to_the_cap(
    cores: int, layout: StreamLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(cores)))
    assert StreamLayout.for_device("cpu") == layout


def test_a_gpu_gets_one_stream() -> None:
    assert StreamLayout.for_device("cuda:0") == StreamLayout(1, 0)


def test_rows_over_the_byte_and_pixel_caps_are_errors_with_their_hash(
    tmp_path: Path, model_dir: Path, image_folder: ImageFolder, options: ScoreOptions
) -> None:
    small = replace(options, limits=replace(options.limits, max_bytes=3000, max_pixels=10_000))
    out = tmp_path / "results.jsonl"
    score_folder(image_folder.root, model_dir, out, small)
    huge = by_path(read_results(out), image_folder.root)["huge_side.jpg"]
    data = (image_folder.root / "huge_side.jpg").read_bytes()
    assert huge["sha256"] == hashlib.sha256(data).hexdigest()  # hashed past the cap
    assert "serve.max_bytes" in str(huge["error"]) and str(len(data)) in str(huge["error"])
    wide = replace(options, limits=replace(options.limits, max_pixels=10_000))
    score_folder(image_folder.root, model_dir, tmp_path / "pixels.jsonl", wide)
    huge = by_path(read_results(tmp_path / "pixels.jsonl"), image_folder.root)["huge_side.jpg"]
    assert "serve.max_pixels" in str(huge["error"]) and "122880" in str(huge["error"])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_csv_and_parquet_hold_the_same_rows_as_jsonl(
    tmp_path: Path,
    model_dir: Path,
    image_folder: ImageFolder,
    options: ScoreOptions,
    suffix: str,
) -> None:
    score_folder(image_folder.root, model_dir, tmp_path / "results.jsonl", options)
    score_folder(image_folder.root, model_dir, tmp_path / f"results{suffix}", options)
    expected = read_results(tmp_path / "results.jsonl")
    assert read_results(tmp_path / f"results{suffix}") == expected
    if suffix == ".parquet":
        # A dataset directory of part files, nothing else left behind.
        assert [p.name.startswith("part-") for p in (tmp_path / "results.parquet").iterdir()] == [
            True
        ]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_a_rerun_skips_what_this_model_version_scored_and_appends_the_rest(
    tmp_path: Path, model_dir: Path, options: ScoreOptions, suffix: str
) -> None:
    folder = write_image_folder(tmp_path / "images", good=6)
    out = tmp_path / f"results{suffix}"
    model = local_model(model_dir)
    paths = list_sources([str(folder.root)])
    first = score_local(list_sources([str(folder.root)], limit=4), model, str(out), options)
    assert (first.listed, first.scored + first.errors) == (4, 4)
    # The same bytes under another name count as scored: resume matches content, not paths.
    copy = folder.root / "zz_copy_of_first.png"
    copy.write_bytes(Path(paths[0]).read_bytes())
    second = score_local(list_sources([str(folder.root)]), model, str(out), options)
    assert (second.skipped, second.scored + second.errors) == (5, len(paths) - 4)
    third = score_local(list_sources([str(folder.root)]), model, str(out), options)
    assert (third.skipped, third.scored, third.errors) == (len(paths) + 1, 0, 0)
    rows = read_results(out)
    assert sorted(str(r["path"]) for r in rows) == sorted(paths)
    assert len({r["sha256"] for r in rows}) == len(rows)


def test_a_partial_last_line_left_by_a_kill_is_cut_and_rescored(
    tmp_path: Path, model_dir: Path, image_folder: ImageFolder, options: ScoreOptions
) -> None:
    out = tmp_path / "results.jsonl"
    score_folder(image_folder.root, model_dir, out, options)
    lines = out.read_text().splitlines(keepends=True)
    # The kill hit the write of the last row: half of it reached the file.
    out.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    rerun = score_folder(image_folder.root, model_dir, out, options)
    assert rerun.scored + rerun.errors == 1  # type: ignore[attr-defined]
    assert sorted(by_path(read_results(out), image_folder.root)) == image_folder.scored_files


def test_a_killed_run_loses_at_most_the_batches_in_flight_and_the_rerun_completes_it(
    tmp_path: Path, model_dir: Path, options: ScoreOptions
) -> None:
    folder = write_image_folder(tmp_path / "images", good=40)
    out = tmp_path / "results.parquet"
    model, paths = local_model(model_dir), list_sources([str(folder.root)])
    options = replace(options, batch_size=2)
    # The run that gets killed, in a fresh interpreter: a forked copy of this one would
    # inherit its OpenMP thread pool, which does not survive a fork.
    killed = replace(options, workers=0)  # a daemon process has no DataLoader workers
    run = multiprocessing.get_context("spawn").Process(
        target=score_local, args=(paths, model, str(out), killed), daemon=True
    )
    run.start()
    try:
        deadline = time.monotonic() + 60
        flushed = 0
        while flushed < 2 * options.batch_size and time.monotonic() < deadline and run.is_alive():
            journals = list(out.glob(f"{JOURNAL_PREFIX}*.jsonl")) if out.is_dir() else []
            flushed = sum(j.read_bytes().count(b"\n") for j in journals)
            time.sleep(0.01)
        assert run.is_alive() and flushed >= 2 * options.batch_size, "no run to kill"
        os.kill(run.pid, signal.SIGKILL)  # type: ignore[arg-type]
    finally:
        run.join(timeout=30)
    assert run.exitcode == -signal.SIGKILL
    # Every batch that was flushed before the kill is kept: at most those in flight (one
    # per inference stream) are lost. The rerun converts the journal first, then scores
    # exactly the rest.
    [journal] = out.glob(f"{JOURNAL_PREFIX}*.jsonl")
    kept = journal.read_bytes().count(b"\n")
    assert kept >= flushed
    rerun = score_local(paths, model, str(out), options)
    assert not list(out.glob(f"{JOURNAL_PREFIX}*"))
    assert (rerun.skipped, rerun.scored + rerun.errors) == (kept, len(paths) - kept)
    rows = read_results(out)
    assert sorted(str(r["path"]) for r in rows) == sorted(paths)


def test_fsspec_urls_are_listed_read_and_reported_as_urls(
    tmp_path: Path, model_dir: Path, image_folder: ImageFolder, options: ScoreOptions
) -> None:
    memory = fsspec.filesystem("memory")
    for name in image_folder.good[:3]:
        memory.pipe(f"/bucket/batch/{name}", (image_folder.root / name).read_bytes())
    memory.pipe("/bucket/batch/.hidden.jpg", b"x")
    file_url = (image_folder.root / "nested").as_uri()
    sources = ["memory://bucket/batch", file_url]
    paths = list_sources(sources)
    nested = sorted(n for n in image_folder.good if n.startswith("nested/"))
    assert paths == [
        *(f"memory:///bucket/batch/{n}" for n in sorted(image_folder.good[:3])),
        *(f"file://{image_folder.root}/{n}" for n in nested),
    ]
    out = tmp_path / "results.jsonl"
    score_local(paths, local_model(model_dir), str(out), options)
    rows = {str(r["path"]): r for r in read_results(out)}
    local = by_path(read_results(_score_plain(tmp_path, model_dir, image_folder, options)),
                    image_folder.root)  # fmt: skip
    for name in nested:
        assert rows[f"file://{image_folder.root}/{name}"]["prob_fake"] == local[name]["prob_fake"]
    memory.rm("/bucket", recursive=True)


def _score_plain(
    tmp_path: Path, model_dir: Path, folder: ImageFolder, options: ScoreOptions
) -> Path:
    out = tmp_path / "plain.jsonl"
    score_folder(folder.root, model_dir, out, options)
    return out


def test_limit_keeps_the_first_files_in_sorted_order(image_folder: ImageFolder) -> None:
    everything = list_sources([str(image_folder.root)])
    assert everything == sorted(everything, key=lambda p: (os.path.dirname(p), p)) or everything
    assert list_sources([str(image_folder.root)], limit=3) == everything[:3]
    # A file named twice (directly and through its folder) is scored once.
    again = list_sources([everything[0], str(image_folder.root)])
    assert again == everything
