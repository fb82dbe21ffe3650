"""Result files that a run appends to batch by batch and a rerun resumes from.

By the extension of --out:
  .jsonl    one JSON object per line;
  .csv      a header, then one line per file (null is an empty field);
  .parquet  a Parquet dataset: a directory of part files, read as one table by pandas,
            pyarrow, DuckDB, Spark or Ray (`pd.read_parquet("results.parquet")`).
Every batch is appended and flushed as soon as it and those before it are scored, so a
killed run loses at most the batches in flight (one per inference stream, local.py). A
Parquet file is only readable once its footer is written, so the Parquet writer appends each
batch to a journal (`_journal-RUN-N.jsonl`, ignored by Parquet readers) and turns every
PART_ROWS rows, and the rest at the end, into a part file `part-RUN-N.parquet`, written
under a temporary name and renamed. A journal whose part exists was already converted; one
without, left by a killed run, is converted when the next run opens the directory. A partial
last line (the batch being written when a run was killed) is cut off on opening.
"""

from __future__ import annotations

import csv
import json
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import fsspec
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from aidetector.batch.resume import ScoredImages
from aidetector.batch.scorer import COLUMNS, SCHEMA, Row, rows_to_table
from aidetector.batch.sources import is_url
from aidetector.errors import AidetectorError, first_line

PART_ROWS = 50_000
JOURNAL_PREFIX = "_journal-"
PART_PREFIX = "part-"
FORMATS = (".parquet", ".csv", ".jsonl")


class ResultWriter(Protocol):
    """Appends rows to a result file and says which images a model version already scored."""

    def scored(self, model_name: str, model_version: str) -> ScoredImages:
        """The sha256s of the rows of this model version that a rerun need not score again."""
        ...

    def write(self, rows: Sequence[Row]) -> None:
        """Append rows and flush them."""
        ...

    def close(self) -> None:
        """Finish the file (the Parquet writer converts its journal)."""
        ...


def output_format(out: str) -> str:
    """Return the extension of --out, or a one-line error for an unknown one."""
    suffix = Path(out.rstrip("/")).suffix.lower()
    if suffix not in FORMATS:
        raise AidetectorError(
            f"--out {out}: unknown extension {suffix or '(none)'!r}; "
            f"use {', '.join(FORMATS)} (results.parquet, results.csv or results.jsonl)"
        )
    return suffix


def open_writer(out: str) -> ResultWriter:
    """Open --out for appending, repairing what a killed run left; format by extension."""
    suffix = output_format(out)
    if is_url(out):
        raise AidetectorError(
            f"--out {out}: the local engine writes local files; use --engine ray to write "
            f"Parquet to a URL, or copy the file there afterwards"
        )
    path = Path(out)
    if suffix == ".parquet":
        return ParquetDatasetWriter(path)
    return CsvWriter(path) if suffix == ".csv" else JsonlWriter(path)


def _resumable(rows: Iterable[dict[str, Any]], model_name: str, model_version: str) -> ScoredImages:
    # A row without a sha256 (the file could not be read) is retried by the rerun.
    return ScoredImages(
        str(row["sha256"])
        for row in rows
        if row.get("sha256")
        and row.get("model_name") == model_name
        and str(row.get("model_version")) == model_version
    )


def cut_partial_line(path: Path) -> None:
    """Truncate a text file after its last newline (what a killed write left half done)."""
    if not path.is_file():
        return
    with path.open("rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        position = size
        while position > 0:
            step = min(position, 1 << 16)
            handle.seek(position - step)
            chunk = handle.read(step)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                handle.truncate(position - step + newline + 1)
                return
            position -= step
        handle.truncate(0)


class TextResults:
    """A text result file appended to a batch at a time: what JSONL and CSV share.

    Subclasses read the rows already there and write a batch; opening cuts off what a
    killed write left half done.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        cut_partial_line(path)
        self._handle: IO[str] | None = None

    def read(self) -> Iterator[dict[str, Any]]:
        """Yield the rows already in the file."""
        raise NotImplementedError

    def scored(self, model_name: str, model_version: str) -> ScoredImages:
        return _resumable(self.read(), model_name, model_version)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class JsonlWriter(TextResults):
    """Appends rows as JSON lines."""

    def read(self) -> Iterator[dict[str, Any]]:
        """Yield the rows already in the file."""
        if not self.path.is_file():
            return
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise AidetectorError(
                        f"{self.path} line {number} is not JSON ({first_line(error)}); "
                        f"use another --out"
                    ) from error
                yield row

    def write(self, rows: Sequence[Row]) -> None:
        if self._handle is None:
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        self._handle.flush()


def _csv_field(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class CsvWriter(TextResults):
    """Appends rows to a CSV file with a header of COLUMNS."""

    def read(self) -> Iterator[dict[str, Any]]:
        """Yield the rows already in the file (as strings, empty fields as None)."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        with self.path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise AidetectorError(
                    f"{self.path} has the columns {reader.fieldnames}, not those of "
                    f"`aidetector score`; use another --out"
                )
            for row in reader:
                yield {key: value or None for key, value in row.items()}

    def write(self, rows: Sequence[Row]) -> None:
        if self._handle is None:
            fresh = not self.path.is_file() or self.path.stat().st_size == 0
            self._handle = self.path.open("a", newline="", encoding="utf-8")
            if fresh:
                csv.writer(self._handle).writerow(COLUMNS)
        writer = csv.writer(self._handle)
        writer.writerows([_csv_field(row[column]) for column in COLUMNS] for row in rows)
        self._handle.flush()


def read_scored_parquet(location: str, model_name: str, model_version: str) -> ScoredImages:
    """The resumable sha256s of a Parquet result dataset (a path or URL; absent: none)."""
    try:
        fs, root = fsspec.core.url_to_fs(location)
        if not fs.exists(root):
            return ScoredImages()
        if fs.isfile(root):
            raise AidetectorError(
                f"--out {location} is a file; bulk scoring writes a Parquet dataset directory "
                f"there: use another --out"
            )
        dataset = pads.dataset(root, filesystem=fs, format="parquet", schema=SCHEMA)
        table = dataset.to_table(
            columns=["sha256"],
            filter=(pc.field("model_name") == model_name)
            & (pc.field("model_version") == model_version)
            & pc.field("sha256").is_valid(),
        )
    except AidetectorError:
        raise
    except Exception as error:  # a foreign or broken file in the directory
        raise AidetectorError(
            f"cannot read the results in {location}: {first_line(error)}; use another --out"
        ) from error
    return ScoredImages(table.column("sha256").to_pylist())


class ParquetDatasetWriter:
    """Appends rows to a Parquet dataset directory through a journal (see the module doc)."""

    def __init__(self, directory: Path) -> None:
        if directory.is_file():
            raise AidetectorError(
                f"--out {directory} is a file; bulk scoring writes a Parquet dataset directory "
                f"there: use another --out"
            )
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        for stale in directory.glob(f"_{PART_PREFIX}*.tmp"):
            stale.unlink()
        for journal in sorted(directory.glob(f"{JOURNAL_PREFIX}*.jsonl")):
            self._convert(journal)
        self.run = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        self.sequence = 0
        self._journal: JsonlWriter | None = None
        self._rows = 0

    def scored(self, model_name: str, model_version: str) -> ScoredImages:
        return read_scored_parquet(str(self.directory), model_name, model_version)

    def write(self, rows: Sequence[Row]) -> None:
        if self._journal is None:
            name = f"{JOURNAL_PREFIX}{self.run}-{self.sequence:05d}.jsonl"
            self._journal = JsonlWriter(self.directory / name)
        self._journal.write(rows)
        self._rows += len(rows)
        if self._rows >= PART_ROWS:
            self._seal()

    def close(self) -> None:
        self._seal()

    def _seal(self) -> None:
        if self._journal is None:
            return
        self._journal.close()
        self._convert(self._journal.path)
        self._journal, self._rows = None, 0
        self.sequence += 1

    def _convert(self, journal: Path) -> None:
        """Write a journal's rows as a part file, then remove the journal (idempotent)."""
        part_name = journal.name.removeprefix(JOURNAL_PREFIX).removesuffix(".jsonl")
        part = self.directory / f"{PART_PREFIX}{part_name}.parquet"
        if not part.exists():
            reader = JsonlWriter(journal)  # cuts a partial last line
            rows = list(reader.read())
            if rows:
                temporary = self.directory / f"_{part.name}.tmp"
                pq.write_table(rows_to_table(rows), temporary)
                os.replace(temporary, part)
        journal.unlink()
