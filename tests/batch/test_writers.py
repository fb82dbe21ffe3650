"""Result writers: append, repair what a kill left, convert journals once, refuse strangers."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from aidetector.batch.scorer import COLUMNS
from aidetector.batch.writers import (
    JOURNAL_PREFIX,
    CsvWriter,
    ParquetDatasetWriter,
    cut_partial_line,
    open_writer,
)
from aidetector.errors import AidetectorError


def row(index: int, version: str = "3", sha: str | None = None) -> dict[str, object]:
    return {
        **dict.fromkeys(COLUMNS),
        "path": f"/images/{index}.jpg",
        "sha256": sha if sha is not None else f"{index:064x}",
        "width": 48,
        "height": 40,
        "label": "FAKE",
        "prob_fake": 0.75,
        "confidence": 0.75,
        "model_name": "detector",
        "model_version": version,
        "model_precision": "fp16",
    }


def test_cut_partial_line_keeps_whole_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    for text, kept in [("a\nb\nhalf", "a\nb\n"), ("a\n", "a\n"), ("half", ""), ("", "")]:
        path.write_text(text)
        cut_partial_line(path)
        assert path.read_text() == kept


def test_parquet_journal_of_a_killed_run_becomes_one_part_on_reopening(tmp_path: Path) -> None:
    out = tmp_path / "r.parquet"
    killed = ParquetDatasetWriter(out)
    killed.write([row(1), row(2)])
    killed.write([row(3)])
    # No close(): the process died here. The journal is not a Parquet file readers see.
    [journal] = out.glob(f"{JOURNAL_PREFIX}*.jsonl")
    assert pq.ParquetDataset(out).files == []
    with journal.open("a") as handle:  # and the next batch was half written
        handle.write('{"path": "/images/4.jp')
    reopened = ParquetDatasetWriter(out)
    assert not journal.exists()
    assert len(reopened.scored("detector", "3")) == 3
    assert len(reopened.scored("detector", "4")) == 0
    assert [r["path"] for r in pq.read_table(out).to_pylist()] == [
        f"/images/{i}.jpg" for i in (1, 2, 3)
    ]
    # Killed between the part's rename and the journal's unlink: the journal (same run and
    # sequence as the part) is dropped, not converted twice.
    journal.write_text('{"path": "/images/1.jpg"}\n')
    ParquetDatasetWriter(out)
    assert len(pq.read_table(out)) == 3 and not list(out.glob(f"{JOURNAL_PREFIX}*"))


def test_rows_without_a_hash_are_retried(tmp_path: Path) -> None:
    writer = open_writer(str(tmp_path / "r.csv"))
    writer.write([row(1), {**row(2, sha=""), "error": "could not be read: timeout"}])
    writer.close()
    assert len(open_writer(str(tmp_path / "r.csv")).scored("detector", "3")) == 1


def test_a_file_that_is_not_a_result_file_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "r.csv"
    foreign.write_text("name,score\nx,1\n")
    with pytest.raises(AidetectorError, match="use another --out"):
        CsvWriter(foreign).scored("detector", "3")
    (tmp_path / "file.parquet").write_bytes(b"PAR1")
    with pytest.raises(AidetectorError, match="is a file"):
        open_writer(str(tmp_path / "file.parquet"))
    with pytest.raises(AidetectorError, match="local engine writes local files"):
        open_writer("s3://bucket/r.parquet")
