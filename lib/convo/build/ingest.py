"""Reading input files into the warehouse: validation, line numbers, rejects, duplicates.

Files are read by DuckDB (streaming, in parallel); Python only reads a file's first line to
check its header and its bytes to hash them (counting its lines on the way). Every data row ends
up in exactly one place: staged, rejected (with its line and reason) or counted as a duplicate.

A CSV file has one record per line: a quoted field cannot span lines, empty lines are skipped but
counted, and a line that cannot be split into the six fields is rejected; the next line is read
normally.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import gzip
import hashlib
import io
import logging
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import duckdb
import ibis
import numpy as np
import pyarrow as pa

from convo.engine.warehouse import WORK, Warehouse
from convo.models.staging import RAW_COLUMNS, accepted_events, deduplicate_events, parse_raw_events

log = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".parquet": "parquet"}
READ_SUFFIXES = (".csv", ".csv.gz", ".parquet")
# A longer CSV line is rejected whole (DuckDB's reader needs a bound; no event is near this long).
MAX_LINE_BYTES = 1 << 20
LINE_TOO_LONG, NOT_UTF8 = f"line longer than {MAX_LINE_BYTES} bytes", "not UTF-8"
LONG_LINE_SHOWN = 10_000  # characters of a line too long kept as its raw_line (as DuckDB's reader keeps)


class InputError(ValueError):
    """A file that cannot be read at all. The build stops before writing anything."""


@dataclass(frozen=True)
class InputFile:
    path: Path
    file_format: str
    sha256: str
    columns: tuple[str, ...]  # the contract's column names, in the file's order
    lines: int | None = None  # a CSV file's lines, counted while hashing it (None: not counted)
    read_name: str = ""  # the name DuckDB reads it by (its open descriptor; see `inspected`)
    gzipped: bool = False
    longest_line: int = 0  # a CSV file's longest line in bytes, its \n not counted
    lone_carriage_returns: bool = False  # a \r not followed by \n (DuckDB's CSV reader fails on it)


@dataclass
class FileCounts:
    file_id: int
    path: str
    rows_read: int = 0
    rows_staged: int = 0
    rows_rejected: int = 0
    duplicates_removed: int = 0


@dataclass(frozen=True)
class Listing:
    """The files a build reads, and the entries of its input directories it does not read."""

    files: list[Path]
    ignored: list[Path]


def _format_of(path: Path) -> str | None:
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
        readable = [p for p in entries if _format_of(p) and p.is_file()]
        if not readable:
            held = f"; it holds only {', '.join(p.name for p in entries)}" if entries else " (it is empty)"
            raise InputError(f"{path}: no {', '.join(READ_SUFFIXES)} file in this directory{held}")
        files += readable
        ignored += [p for p in entries if p not in readable]
    return Listing(files, ignored)


def sha256(path: Path) -> str:
    with path.open("rb") as f:
        return _hash_and_count_lines(f, gzipped=_format_of(path) == "csv.gz")[0]


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
class _LineStats:
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


def _hash_and_count_lines(f: BinaryIO, *, gzipped: bool = False) -> tuple[str, _LineStats]:
    """The file's SHA-256 and its lines (ending in \\n or \\r\\n), in the one pass that reads the
    file; a gzipped file's lines are those of its text."""
    digest, lines = hashlib.sha256(), _LineStats()

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


def csv_columns(path: Path) -> tuple[str, ...]:
    with path.open("rb") as f:
        return _csv_header(f, path, gzipped=_format_of(path) == "csv.gz")


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


def _parquet_columns(wh: Warehouse, path: Path, read_name: str) -> tuple[str, ...]:
    try:
        names = [r[0].lower() for r in wh.execute("DESCRIBE SELECT * FROM read_parquet(?)", [read_name])]
    except Exception as exc:  # DuckDB raises several exception types for unreadable files
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    if sorted(names) != sorted(RAW_COLUMNS):
        raise InputError(f"{path}: wrong columns {names}; expected {list(RAW_COLUMNS)}")
    return tuple(names)


@contextlib.contextmanager
def inspected(wh: Warehouse, paths: list[Path]) -> Iterator[list[InputFile]]:
    """Check every file can be read before anything is written; hash them.

    Each file stays open until the block ends, and DuckDB reads it through its descriptor: its
    reader takes a name as a glob pattern (`star*.csv` would read `starX.csv` too), a descriptor is
    that one file, and the very file that was checked and hashed.
    """
    with contextlib.ExitStack() as open_files:
        yield [_inspect(wh, path, open_files) for path in paths]


def _inspect(wh: Warehouse, path: Path, open_files: contextlib.ExitStack) -> InputFile:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    file_format = _format_of(path)
    if file_format is None:
        raise InputError(f"{path}: unsupported file type {path.suffix!r}; expected {', '.join(READ_SUFFIXES)}")
    try:
        f = open_files.enter_context(path.open("rb"))
    except OSError as exc:
        raise InputError(f"{path}: cannot be read: {exc.strerror}") from None
    read_name = f"/proc/self/fd/{f.fileno()}"
    gzipped = file_format == "csv.gz"
    if file_format == "parquet":
        columns = _parquet_columns(wh, path, read_name)
    else:
        columns = _csv_header(f, path, gzipped=gzipped)
        f.seek(0)
    digest, lines = _hash_and_count_lines(f, gzipped=gzipped)
    if file_format == "parquet":
        return InputFile(path, "parquet", digest, columns, read_name=read_name)
    return InputFile(
        path, "csv", digest, columns, lines.count, read_name, gzipped, lines.longest, lines.lone_carriage_returns > 0
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# How DuckDB's CSV reader splits a line into fields: a quoted field (spaces around the quotes
# allowed, "" for a quote inside) or plain text not starting with a quote (a quote further on is text).
_QUOTED = '"(?:[^"]|"")*"'
_FIELD = f' *{_QUOTED} *| *[^ ,"][^,]*| *'
# Reads a file's lines whole: no quotes, a delimiter text does not contain (a line with it would
# fail the read, not be cut).
_NO_DELIMITER = "\x01\x02\x03\x04"


def _split_lines(lines: str) -> str:
    """SQL: the rows of the query `lines` (a column `text`) with the line's `fields` and `reason`,
    why it is not a record of the six fields (NULL when it is).

    As DuckDB's reader: empty fields after the sixth are ignored. Reasons use its error types (and
    the Spark reader's counts): a wrong number of fields first (complete quoted fields removed
    before counting commas), then a quote left open or followed by text.
    """
    n = len(RAW_COLUMNS)
    counts = f"'Expected Number of Columns: {n} Found: ' || found"
    unquoted = "CASE WHEN ltrim(x) LIKE '\"%' THEN replace(trim(x)[2:-2], '\"\"', '\"') ELSE x END"
    return f"""
    SELECT *, CASE WHEN found < {n} THEN 'MISSING COLUMNS: ' || {counts}
                   WHEN found > {n} THEN 'TOO MANY COLUMNS: ' || {counts}
                   WHEN fields IS NULL THEN 'UNQUOTED VALUE: Value with unterminated quote found.' END AS reason
    FROM (SELECT *, CASE WHEN fields IS NULL
                         THEN len(string_split(regexp_replace(text, {_literal(_QUOTED)}, '', 'g'), ','))
                         WHEN len(list_filter(fields[{n + 1}:], lambda x: x <> '')) = 0 THEN least(len(fields), {n})
                         ELSE len(fields) END AS found
          FROM (SELECT *, CASE WHEN NOT contains(text, '"') THEN string_split(text, ',')
                               WHEN regexp_full_match(text, {_literal(f"(?:{_FIELD})(?:,(?:{_FIELD}))*")})
                               THEN list_transform(regexp_extract_all(text || ',', {_literal(f"({_FIELD}),")}, 1),
                                                   lambda x: {unquoted})
                          END AS fields
                FROM ({lines})))"""


def _read_options(f: InputFile) -> str:
    """Options of every DuckDB read of a CSV file: its compression (DuckDB reads a descriptor, whose
    name has no extension to guess it from) and the longest line; errors of a line go to the rejects.

    DuckDB's bound on a line is not exact (near a buffer's end it may cut a shorter line), so it is
    set well above MAX_LINE_BYTES: a file with a longer line is read line by line, and the bound is
    checked in SQL, exactly."""
    return (
        f"compression = '{'gzip' if f.gzipped else 'none'}', max_line_size = {2 * MAX_LINE_BYTES},"
        " store_rejects = true, rejects_table = 'csv_rejects', rejects_scan = 'csv_scans'"
    )


def _line_errors() -> str:
    """SQL: the rejected lines (from DuckDB's rejects table) with their `line_error`, the reason
    the line could not be read as text at all (NULL when it was, and only its fields are wrong)."""
    return f"""SELECT line, trim(min(csv_line), chr(13) || chr(10)) AS text,
                      bool_or(error_type = 'UNQUOTED VALUE') AS quote_error,
                      CASE WHEN bool_or(error_type = 'LINE SIZE OVER MAXIMUM') THEN '{LINE_TOO_LONG}'
                           WHEN bool_or(error_type = 'INVALID ENCODING') THEN '{NOT_UTF8}' END AS line_error
               FROM temp.csv_rejects GROUP BY line"""


def _numbered(rows: str, skipped: str, first_line: int) -> str:
    """SQL: the rows of the query `rows` (with `position`: 0, 1, ... in file order) with their `line`.

    The first row is on `first_line`; each row after lines of the table `skipped` (rejected
    lines, with their `line`) moves down by their number, found from the rows before each run of them.
    """
    return f"""SELECT r.*, r.position + {first_line} + coalesce(s.shift, 0) AS line
    FROM ({rows}) AS r
    ASOF LEFT JOIN (SELECT line - {first_line} - n + 1 AS position, max(n) AS shift
                    FROM (SELECT line, row_number() OVER (ORDER BY line) AS n FROM {skipped})
                    GROUP BY 1) AS s
    ON r.position >= s.position"""


def _land_csv(wh: Warehouse, f: InputFile, file_id: int) -> None:
    """Raw text of every well-formed line, with its line number; malformed lines to the rejects.

    DuckDB's reader (parallel) is exact when it read one row or reject per line: then rows, rejects
    and the header add up to the file's lines, since each takes at least one line of text and an
    empty line gives nothing. Otherwise (empty lines, a quote left open that swallowed the lines
    after it, a quoted field over several lines) the file is read again line by line; so it is
    when a rejected line has a quote: after a quote error the reader may report part of the line,
    or none of it. A line that is not UTF-8 or is too long is rejected whole, by either read.
    """
    if f.longest_line > MAX_LINE_BYTES or f.lone_carriage_returns:
        log.info(
            "%s: a line is longer than %d bytes or holds a carriage return; reading it line by line",
            f.path,
            MAX_LINE_BYTES,
        )
        _land_lines(wh, f, file_id)
        return
    wh.execute("DROP TABLE IF EXISTS temp.csv_rejects; DROP TABLE IF EXISTS temp.csv_scans")
    # Columns given explicitly: no sniffing (it guesses wrong on small files with bad rows).
    columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in f.columns) + "}"
    try:
        wh.execute(
            f"""CREATE OR REPLACE TEMP TABLE {WORK}.landing_{file_id} AS
            SELECT * FROM read_csv(?, auto_detect = false, header = true, columns = {columns}, delim = ',',
                                   quote = '"', escape = '"', strict_mode = true, null_padding = false,
                                   {_read_options(f)})""",
            [f.read_name],
        )
    except duckdb.InvalidInputException as exc:  # e.g. line endings mixed so that its state machine stops
        log.info("%s: DuckDB's CSV reader stopped (%s); reading it line by line", f.path, str(exc).splitlines()[0])
        _land_lines(wh, f, file_id)
        return
    # A rejected line's reason comes from splitting its text: the same on both ways of reading.
    wh.execute(f"""CREATE OR REPLACE TEMP TABLE {WORK}.csv_rejected_lines AS
               SELECT * REPLACE (coalesce(line_error, reason) AS reason) FROM ({_split_lines(_line_errors())})""")
    exact = wh.scalar(
        f"""SELECT count(*) + (SELECT count(*) FROM {WORK}.landing_{file_id}) + 1 = ?
                   AND coalesce(bool_and(line_error IS NOT NULL
                                         OR reason IS NOT NULL AND NOT quote_error AND NOT contains(text, '"')), true)
            FROM {WORK}.csv_rejected_lines""",
        [f.lines],
    )
    if not exact:
        log.info("%s: not one record per line (empty lines, quotes); reading it line by line", f.path)
        _land_lines(wh, f, file_id)
        return
    wh.execute(
        f"""CREATE OR REPLACE TEMP TABLE {WORK}.malformed_{file_id} AS
        SELECT line, reason, text AS raw_line FROM {WORK}.csv_rejected_lines"""
    )
    raw = ", ".join(f"l.{c}" for c in RAW_COLUMNS)
    # A view, not a copy: parsing reads the landed rows once, numbering them on the way. rowid
    # counts well-formed rows in file order (from an offset inside a transaction).
    landing = f"{WORK}.landing_{file_id}"
    rows = f"SELECT *, rowid - (SELECT min(rowid) FROM {landing}) AS position FROM {landing}"
    if wh.scalar(f"SELECT count(*) FROM {WORK}.malformed_{file_id}"):
        rows = _numbered(rows, f"{WORK}.malformed_{file_id}", first_line=2)
    else:
        rows = f"SELECT *, position + 2 AS line FROM ({rows})"
    wh.execute(
        f"""CREATE OR REPLACE TEMP VIEW raw_{file_id} AS
        SELECT {raw}, {_literal(str(f.path))} AS source_file, l.line::BIGINT AS source_line,
               {file_id}::BIGINT AS file_seq
        FROM ({rows}) AS l"""
    )


def _land_lines(wh: Warehouse, f: InputFile, file_id: int) -> None:
    """`_land_csv`'s tables from the file's lines, read whole and split in SQL."""
    landing, unreadable = f"{WORK}.landing_{file_id}", f"{WORK}.unreadable_lines_{file_id}"
    if f.lone_carriage_returns:
        _read_lines_in_python(wh, f, landing, unreadable)
    else:
        try:
            _read_lines(wh, f, landing, unreadable)
        except duckdb.InvalidInputException as exc:  # an empty \r\n line among \n lines stops it, for one
            log.info("%s: DuckDB cannot split its lines (%s); Python splits them", f.path, str(exc).splitlines()[0])
            _read_lines_in_python(wh, f, landing, unreadable)
    seen = wh.scalar(f"SELECT (SELECT count(*) FROM {landing}) + (SELECT count(*) FROM {unreadable})")
    if seen != f.lines:
        raise InputError(f"{f.path}: read line by line, DuckDB saw {seen} lines where the file has {f.lines}")
    # Numbered in file order; an empty line is NULL: skipped, but it has its number.
    rows = f"SELECT rowid - (SELECT min(rowid) FROM {landing}) AS position, text FROM {landing}"
    lines = f"""SELECT line, text FROM ({_numbered(rows, unreadable, first_line=1)})
                WHERE line > 1 AND text IS NOT NULL"""
    too_long = f"strlen(text) > {MAX_LINE_BYTES}"  # bytes, not characters
    wh.execute(
        f"""CREATE OR REPLACE TEMP TABLE {WORK}.lines_{file_id} AS
        SELECT line, fields, if({too_long}, '{LINE_TOO_LONG}', reason) AS reason,
               CASE WHEN {too_long} THEN left(text, {LONG_LINE_SHOWN}) WHEN reason IS NOT NULL THEN text END AS raw_line
        FROM ({_split_lines(lines)});
        DROP TABLE {landing}"""
    )
    wh.execute(
        f"""CREATE OR REPLACE TEMP TABLE {WORK}.malformed_{file_id} AS
        SELECT line, reason, raw_line FROM {WORK}.lines_{file_id} WHERE reason IS NOT NULL
        UNION ALL SELECT line, reason, raw_line FROM {unreadable}"""
    )
    # Empty fields are NULL, as DuckDB's reader gives them.
    raw = ", ".join(f"nullif(fields[{f.columns.index(c) + 1}], '') AS {c}" for c in RAW_COLUMNS)
    wh.execute(
        f"""CREATE OR REPLACE TEMP VIEW raw_{file_id} AS
        SELECT {raw}, {_literal(str(f.path))} AS source_file, line AS source_line, {file_id}::BIGINT AS file_seq
        FROM {WORK}.lines_{file_id} WHERE reason IS NULL"""
    )


def _read_lines(wh: Warehouse, f: InputFile, landing: str, unreadable: str) -> None:
    """Table `landing`: the text of each line DuckDB can read, in file order (NULL for an empty
    line); table `unreadable`: the other lines (not UTF-8, too long) with their line and reason."""
    wh.execute("DROP TABLE IF EXISTS temp.csv_rejects; DROP TABLE IF EXISTS temp.csv_scans")
    wh.execute(
        f"""CREATE OR REPLACE TEMP TABLE {landing} AS
        SELECT text FROM read_csv(?, auto_detect = false, header = false, columns = {{'text': 'VARCHAR'}},
                                  delim = {_literal(_NO_DELIMITER)}, quote = '', escape = '',
                                  {_read_options(f)})""",
        [f.read_name],
    )
    wh.execute(f"""CREATE OR REPLACE TEMP TABLE {unreadable} AS
               SELECT line, coalesce(line_error, 'unreadable line') AS reason, text AS raw_line
               FROM ({_line_errors()})""")


def _read_lines_in_python(wh: Warehouse, f: InputFile, landing: str, unreadable: str) -> None:
    """`_read_lines`'s tables, for a file DuckDB cannot read at all: a carriage return inside a line
    stops its CSV reader whatever its options. Python splits at \\n only; the lines reach DuckDB in
    batches, so the file is never held in memory whole."""
    wh.execute(
        f"CREATE OR REPLACE TEMP TABLE {landing} (text VARCHAR); "
        f"CREATE OR REPLACE TEMP TABLE {unreadable} (line BIGINT, reason VARCHAR, raw_line VARCHAR)"
    )
    readable, bad = [], []
    schemas = {
        landing: pa.schema({"text": pa.string()}),
        unreadable: pa.schema({"line": pa.int64(), "reason": pa.string(), "raw_line": pa.string()}),
    }

    def flush() -> None:
        for table, rows in ((landing, readable), (unreadable, bad)):
            if rows:
                wh.con.con.register("lines_batch", pa.Table.from_pylist(rows, schemas[table]))
                wh.execute(f"INSERT INTO {table} SELECT * FROM lines_batch")
                wh.con.con.unregister("lines_batch")
                rows.clear()

    with open(f.read_name, "rb") as raw, gzip.GzipFile(fileobj=raw) if f.gzipped else raw as lines:
        for number, line in enumerate(lines, start=1):
            line = line.removesuffix(b"\n").removesuffix(b"\r")
            if len(line) > MAX_LINE_BYTES:
                shown = line[:LONG_LINE_SHOWN].decode("utf-8", "replace").replace("\ufffd", "?")
                bad.append({"line": number, "reason": LINE_TOO_LONG, "raw_line": shown})
                continue
            try:
                readable.append({"text": line.decode("utf-8") or None})
            except UnicodeDecodeError:
                shown = line.decode("utf-8", "replace").replace("\ufffd", "?")  # as DuckDB's reader shows it
                bad.append({"line": number, "reason": NOT_UTF8, "raw_line": shown})
            if len(readable) + len(bad) >= 100_000:
                flush()
        flush()


def _land_parquet(wh: Warehouse, f: InputFile, file_id: int) -> None:
    actual = {r[0].lower(): r[0] for r in wh.execute("DESCRIBE SELECT * FROM read_parquet(?)", [f.read_name])}
    raw = ", ".join(f'"{actual[c]}"::VARCHAR AS {c}' for c in RAW_COLUMNS)
    wh.execute(
        f"""CREATE OR REPLACE TEMP VIEW raw_{file_id} AS
        SELECT {raw}, {_literal(str(f.path))} AS source_file, (file_row_number + 1)::BIGINT AS source_line,
               {file_id}::BIGINT AS file_seq
        FROM read_parquet({_literal(f.read_name)}, file_row_number = true)"""
    )
    wh.execute(
        f"CREATE OR REPLACE TEMP TABLE {WORK}.malformed_{file_id}"
        " (line BIGINT, reason VARCHAR, raw_line VARCHAR, good_rows_before BIGINT)"
    )


def land(wh: Warehouse, files: list[InputFile], first_file_id: int) -> dict[int, InputFile]:
    """Read each file into scratch tables raw_<id> and malformed_<id>; return files by id."""
    by_id = {}
    for offset, f in enumerate(files):
        file_id = first_file_id + offset
        log.info("reading %s (%s, %.1f MB)", f.path, f.file_format, f.path.stat().st_size / 1e6)
        try:
            (_land_csv if f.file_format == "csv" else _land_parquet)(wh, f, file_id)
        except duckdb.InvalidInputException as exc:  # a file DuckDB cannot parse at all
            raise InputError(f"{f.path}: cannot be read as {f.file_format}: {str(exc).splitlines()[0]}") from exc
        by_id[file_id] = f
    return by_id


def stage_batch(
    wh: Warehouse,
    by_id: dict[int, InputFile],
    staged_events_of: Callable[[str], ibis.Table] | None,
    window: tuple[datetime.datetime, datetime.datetime],
) -> dict[int, FileCounts]:
    """Type the landed rows; write scratch tables batch_events (new, unique) and batch_rejected.

    `staged_events_of(table)` reads the events already staged for the conversations in the
    `conversation_id` column of a scratch table (None when nothing is staged yet); `window` holds
    the first and last accepted event time.
    """
    ids = sorted(by_id)
    raw = ibis.union(*(wh.table(f"raw_{i}", WORK) for i in ids)) if len(ids) > 1 else wh.table(f"raw_{ids[0]}", WORK)
    t0 = time.perf_counter()
    # The raw text is not copied along: only rejected rows need it, and they fetch it back.
    parsed = wh.materialize("batch_parsed", parse_raw_events(raw, window).drop(*RAW_COLUMNS))
    log.info(
        "parsed and identified %d rows in %.1f s",
        wh.scalar(f"SELECT count(*) FROM {WORK}.batch_parsed"),
        time.perf_counter() - t0,
    )
    rejects = parsed.filter(parsed.reject_reason.notnull())
    rejects = rejects.join(raw, ["file_seq", "source_line"])
    rejected = rejects.select(
        file_id=rejects.file_seq,
        source_file=rejects.source_file,
        source_line=rejects.source_line,
        **{c: rejects[c] for c in RAW_COLUMNS},
        raw_line=ibis.null("string"),
        reason=rejects.reject_reason,
    )
    malformed = [
        wh.table(f"malformed_{i}", WORK).select(
            file_id=ibis.literal(i, "int64"),
            source_file=ibis.literal(str(by_id[i].path)),
            source_line=ibis._.line.cast("int64"),
            **{c: ibis.null("string") for c in RAW_COLUMNS},
            raw_line=ibis._.raw_line,
            reason="malformed CSV row: " + ibis._.reason,
        )
        for i in ids
    ]
    wh.materialize("batch_rejected", ibis.union(rejected, *malformed).order_by(["file_id", "source_line"]))

    t0 = time.perf_counter()
    # Parsing hashed the event ids: the accepted rows are a view over the parsed ones, and the
    # de-duplication reads them in the one statement that writes the new events.
    wh.execute(f"CREATE OR REPLACE TEMP VIEW batch_accepted AS {wh.compile(accepted_events(parsed))}")
    unique = deduplicate_events(wh.table("batch_accepted", WORK))
    if staged_events_of is not None:
        # A copy of a staged event has its conversation: compare with those conversations' events only.
        unique = unique.anti_join(staged_events_of("batch_accepted"), "event_id")
    wh.materialize("batch_events", unique)
    log.info("de-duplicated the events in %.1f s", time.perf_counter() - t0)

    counts = {i: FileCounts(i, str(by_id[i].path)) for i in ids}
    for table, col, attr in (
        ("batch_parsed", "file_seq", "rows_read"),  # the well-formed rows
        ("batch_rejected", "file_id", "rows_rejected"),
        ("batch_events", "file_seq", "rows_staged"),
    ):
        for file_id, n in wh.execute(f"SELECT {col}, count(*) FROM {WORK}.{table} GROUP BY 1"):
            setattr(counts[file_id], attr, n)
    for i, c in counts.items():
        c.rows_read += wh.scalar(f"SELECT count(*) FROM {WORK}.malformed_{i}")
        c.duplicates_removed = c.rows_read - c.rows_staged - c.rows_rejected
    return counts
