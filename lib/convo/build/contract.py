"""The ingestion contract: what every reader of input files checks, rejects and counts.

Two readers implement it, DuckDB's (`build/ingest.py`) and Spark's (`backends/spark_reader.py`);
both take from here, so that the same files give the same rows on both:

- the files: which names are read (`expand`), the checks that stop a build before anything is
  written (`inspected`: exists, a regular file, a known format, readable, not empty, the header or
  the Parquet columns, a sound gzip stream) with their messages, and each file's SHA-256 and lines;
- how a CSV line splits into the six fields (`QUOTED`, `FIELD`) and the reasons of one that does
  not or cannot be read as text at all (each reader writes the rule in its own SQL);
- the rejected-row shape (`rejected_rows`) and the per-file counts (`counted`: read = staged +
  rejected + duplicates, in the file's run record, `FileRecord`), which make the `ingested_files`
  rows (`ingested_files`).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import ibis
import numpy as np
import pyarrow.parquet as pq

from convo.engine.state import FileRecord
from convo.models.staging import RAW_COLUMNS


class InputError(ValueError):
    """A file that cannot be read at all. The build stops before writing anything (exit status 2)."""


FORMATS = {".csv": "csv", ".parquet": "parquet"}
READ_SUFFIXES = (".csv", ".csv.gz", ".parquet")

# -- reasons a line is rejected -----------------------------------------------------------------
# A longer CSV line is rejected whole (DuckDB's reader needs a bound; no event is near this long).
MAX_LINE_BYTES = 1 << 20
LINE_TOO_LONG, NOT_UTF8 = f"line longer than {MAX_LINE_BYTES} bytes", "not UTF-8"
LONG_LINE_SHOWN = 10_000  # characters of a line too long kept as its raw_line (as DuckDB's reader keeps)
# Every line that is not a record of the six fields is rejected with this prefix before its reason.
MALFORMED = "malformed CSV row: "
# How a line splits into fields, as DuckDB's CSV reader splits it: a quoted field (spaces around the
# quotes allowed, "" for a quote inside) or plain text not starting with a quote (a quote further on
# is text); an empty field is empty. Empty fields after the sixth are ignored.
QUOTED = '"(?:[^"]|"")*"'
FIELD = f' *{QUOTED} *| *[^ ,"][^,]*| *'
# Why a line is not a record (DuckDB's error types): a wrong number of fields first, counted as the
# commas outside complete quoted fields plus one; then a quote left open or followed by text.
MISSING_COLUMNS, TOO_MANY_COLUMNS = "MISSING COLUMNS", "TOO MANY COLUMNS"
UNQUOTED_VALUE = "UNQUOTED VALUE: Value with unterminated quote found."
FOUND_COLUMNS = f"Expected Number of Columns: {len(RAW_COLUMNS)} Found: "


# -- files --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputFile:
    path: Path
    file_format: str
    sha256: str
    columns: tuple[str, ...]  # the contract's column names, in the file's order
    lines: int | None = None  # a CSV file's lines, counted while hashing it (None: a Parquet file)
    read_name: str = ""  # the name a reader reads it by (its open descriptor; see `inspected`)
    gzipped: bool = False
    longest_line: int = 0  # a CSV file's longest line in bytes, its \n not counted
    lone_carriage_returns: bool = False  # a \r not followed by \n (DuckDB's CSV reader fails on it)


@dataclass(frozen=True)
class Listing:
    """The files a build reads, and the entries of its input directories it does not read."""

    files: list[Path]
    ignored: list[Path]


def format_of(path: Path) -> str | None:
    name = path.name.lower()
    return "csv.gz" if name.endswith(".csv.gz") else FORMATS.get(path.suffix.lower())


def expand(inputs: list[str]) -> Listing:
    """File names and directories (their CSV, gzipped CSV and Parquet files, in name order) -> files.

    Names are taken literally: `star*.csv` is the file of that name (the shell expands patterns).
    """
    files: list[Path] = []
    ignored: list[Path] = []
    for name in inputs:
        path = Path(name)
        if not path.is_dir():
            files.append(path)
            continue
        try:
            entries = sorted(path.iterdir())
        except OSError as exc:
            raise InputError(f"{path}: cannot list this directory: {exc.strerror}") from None
        readable = [p for p in entries if format_of(p) and p.is_file()]
        if not readable:
            held = f"; it holds only {', '.join(p.name for p in entries)}" if entries else " (it is empty)"
            raise InputError(f"{path}: no {', '.join(READ_SUFFIXES)} file in this directory{held}")
        files += readable
        ignored += [p for p in entries if p not in readable]
    return Listing(files, ignored)


def not_read(path: Path) -> str:
    """Why an entry of an input directory is not read (said in the log and the build's summary)."""
    kind = "a directory" if path.is_dir() else "not a " + ", ".join(READ_SUFFIXES) + " file"
    return f"not read: {kind}"


def sha256(path: Path) -> str:
    with path.open("rb") as f:
        return _hash_and_count_lines(f, gzipped=format_of(path) == "csv.gz")[0]


def _inflated(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The text of gzip data given in pieces (every member of a multi-member file), streaming."""
    inflate, ended = zlib.decompressobj(wbits=31), True
    for chunk in chunks:
        while chunk:
            yield inflate.decompress(chunk)
            ended = inflate.eof
            chunk = inflate.unused_data if ended else b""
            if ended:
                inflate = zlib.decompressobj(wbits=31)
    if not ended:
        raise zlib.error("the data ends part-way through a gzip member")


@dataclass
class LineStats:
    """Counts the lines of text given in pieces, and the longest one (its \\n not counted).

    numpy finds the line ends at memory speed; a loop over bytes would be far slower than hashing."""

    count: int = 0
    longest: int = 0
    open_line: int = 0  # bytes of the line not ended yet
    lone_carriage_returns: int = 0
    ends_in_cr: bool = False  # the last piece ended in \r (its \n, if any, starts the next piece)

    def add(self, text: bytes) -> None:
        if not text:
            return
        data = np.frombuffer(text, np.uint8)
        if self.ends_in_cr and text[:1] != b"\n":
            self.lone_carriage_returns += 1
        is_cr = data == ord("\r")
        crlf = int(np.count_nonzero(is_cr[:-1] & (data[1:] == ord("\n"))))
        self.ends_in_cr = bool(is_cr[-1])  # decided by the next piece
        self.lone_carriage_returns += int(np.count_nonzero(is_cr)) - crlf - self.ends_in_cr
        ends = np.flatnonzero(data == ord("\n"))
        if not len(ends):
            self.open_line += len(text)
            return
        between = int(np.diff(ends).max()) - 1 if len(ends) > 1 else 0
        self.count += len(ends)
        self.longest = max(self.longest, self.open_line + int(ends[0]), between)
        self.open_line = len(text) - int(ends[-1]) - 1

    def end(self) -> None:
        self.lone_carriage_returns += self.ends_in_cr
        if self.open_line:  # a last line without an end counts
            self.count += 1
            self.longest = max(self.longest, self.open_line)
            self.open_line = 0


def _hash_and_count_lines(f: BinaryIO, *, gzipped: bool = False) -> tuple[str, LineStats]:
    """The file's SHA-256 and its lines (ending in \\n or \\r\\n), in the one pass that reads the
    file; a gzipped file's lines are those of its text."""
    digest, lines = hashlib.sha256(), LineStats()

    def chunks() -> Iterator[bytes]:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            yield chunk

    try:
        for text in _inflated(chunks()) if gzipped else chunks():
            lines.add(text)
    except zlib.error as exc:
        raise InputError(f"{f.name}: not a readable gzip file ({exc})") from None
    lines.end()
    return digest.hexdigest(), lines


def _csv_header(f: BinaryIO, path: Path, *, gzipped: bool) -> tuple[str, ...]:
    try:
        first = (gzip.GzipFile(fileobj=f, mode="rb") if gzipped else f).readline(1 << 16)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: not a readable gzip file ({exc})") from None
    if not first.strip():
        raise InputError(f"{path}: the file is empty; expected a header line {','.join(RAW_COLUMNS)}")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: line 1 is not UTF-8 text; this is not a CSV file") from None
    header = [h.strip().lower() for h in next(csv.reader(io.StringIO(text)))]
    if sorted(header) != sorted(RAW_COLUMNS):
        raise InputError(f"{path}: line 1: wrong header {','.join(header)!r}; expected {','.join(RAW_COLUMNS)}")
    return tuple(header)


def _parquet_columns(f: BinaryIO, path: Path) -> tuple[str, ...]:
    # The footer alone: a broken file fails here with one clear line, whichever engine reads it next.
    try:
        names = [n.lower() for n in pq.read_schema(f).names]
    except Exception as exc:  # pyarrow raises several exception types for unreadable files
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    if sorted(names) != sorted(RAW_COLUMNS):
        raise InputError(f"{path}: wrong columns {names}; expected {list(RAW_COLUMNS)}")
    return tuple(names)


@contextlib.contextmanager
def inspected(paths: list[Path]) -> Iterator[list[InputFile]]:
    """Check every file can be read before anything is written; hash them.

    Each file stays open until the block ends, and a reader reads it through its descriptor
    (`read_name`): DuckDB's and Spark's readers take a name as a glob pattern (`star*.csv` would
    read `starX.csv` too), a descriptor is that one file, and the very file that was checked and hashed.
    """
    with contextlib.ExitStack() as open_files:
        yield [_inspect(path, open_files) for path in paths]


def _inspect(path: Path, open_files: contextlib.ExitStack) -> InputFile:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    file_format = format_of(path)
    if file_format is None:
        raise InputError(f"{path}: unsupported file type {path.suffix!r}; expected {', '.join(READ_SUFFIXES)}")
    try:
        f = open_files.enter_context(path.open("rb"))
    except OSError as exc:
        raise InputError(f"{path}: cannot be read: {exc.strerror}") from None
    read_name = f"/proc/self/fd/{f.fileno()}"
    gzipped = file_format == "csv.gz"
    columns = _parquet_columns(f, path) if file_format == "parquet" else _csv_header(f, path, gzipped=gzipped)
    f.seek(0)
    digest, lines = _hash_and_count_lines(f, gzipped=gzipped)
    if file_format == "parquet":
        return InputFile(path, "parquet", digest, columns, read_name=read_name)
    return InputFile(
        path, "csv", digest, columns, lines.count, read_name, gzipped, lines.longest, lines.lone_carriage_returns > 0
    )


def first_of_each_content(files: Sequence[InputFile]) -> tuple[list[InputFile], list[InputFile]]:
    """(the first file of each content, the later files with a content already given)."""
    seen: set[str] = set()
    first, repeated = [], []
    for f in files:
        (repeated if f.sha256 in seen else first).append(f)
        seen.add(f.sha256)
    return first, repeated


# -- what a build writes about them ---------------------------------------------------------------
def counted(file_id: int, f: InputFile, *, read: int, staged: int, rejected: int) -> FileRecord:
    """The record of an ingested file with its counts: every row read that is neither staged nor
    rejected is a duplicate."""
    duplicates = read - staged - rejected
    if duplicates < 0:  # a reader lost or invented rows: refuse to record counts that cannot be
        raise RuntimeError(f"{f.path}: {read} rows read, but {staged} staged and {rejected} rejected")
    return FileRecord(file_id, str(f.path), f.sha256, f.file_format, "ingested", read, staged, rejected, duplicates)


REJECTED_SCHEMA = ibis.schema(
    {
        "file_id": "int64",
        "source_file": "string",
        "source_line": "int64",
        **dict.fromkeys(RAW_COLUMNS, "string"),
        "raw_line": "string",
        "reason": "string",
    }
)
INGESTED_FILES_SCHEMA = ibis.schema(
    {
        "file_id": "int64",
        "path": "string",
        "sha256": "string",
        "file_format": "string",
        "rows_read": "int64",
        "rows_staged": "int64",
        "rows_rejected": "int64",
        "duplicates_removed": "int64",
    }
)


def rejected_rows(invalid: ibis.Table, malformed: ibis.Table) -> ibis.Table:
    """`rejected_conversation_events`: rows that cannot be staged and lines that cannot be split.

    `invalid`: parsed rows (`file_seq`, `source_file`, `source_line`, the raw columns) with their
    `reject_reason`; `malformed`: lines (`file_seq`, `source_file`, `source_line`) with `raw_line`
    and `reason` (a split reason, or why the line is not text).
    """
    rows = invalid.filter(invalid.reject_reason.notnull()).select(
        file_id=invalid.file_seq.cast("int64"),
        source_file=invalid.source_file,
        source_line=invalid.source_line.cast("int64"),
        **{c: invalid[c].cast("string") for c in RAW_COLUMNS},
        raw_line=ibis.null("string"),
        reason=invalid.reject_reason,
    )
    lines = malformed.select(
        file_id=malformed.file_seq.cast("int64"),
        source_file=malformed.source_file,
        source_line=malformed.source_line.cast("int64"),
        **{c: ibis.null("string") for c in RAW_COLUMNS},
        raw_line=malformed.raw_line,
        reason=MALFORMED + malformed.reason,
    )
    return rows.union(lines).order_by(["file_id", "source_line"])


def ingested_files(records: Sequence[FileRecord]) -> ibis.Table:
    """The `ingested_files` rows of files read together, from their records (`counted`)."""
    return ibis.memtable(
        {c: [getattr(r, c) for r in records] for c in INGESTED_FILES_SCHEMA.names}, schema=INGESTED_FILES_SCHEMA
    )
