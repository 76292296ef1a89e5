"""Reading input files into the warehouse: validation, line numbers, rejects, duplicates.

Files are read by DuckDB (streaming, in parallel); Python only reads a file's first line to
check its header and its bytes to hash them (counting its lines on the way). Every data row ends
up in exactly one place: staged, rejected (with its line and reason) or counted as a duplicate.

A CSV file has one record per line: a quoted field cannot span lines, empty lines are skipped but
counted, and a line that cannot be split into the six fields is rejected; the next line is read
normally.
"""

from __future__ import annotations

import csv
import datetime
import glob
import hashlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import ibis
import numpy as np

from convo.models.staging import RAW_COLUMNS, accepted_events, deduplicate_events, parse_raw_events
from convo.warehouse import WORK, Warehouse

log = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".parquet": "parquet"}


class InputError(ValueError):
    """A file that cannot be read at all. The build stops before writing anything."""


@dataclass(frozen=True)
class InputFile:
    path: Path
    file_format: str
    sha256: str
    columns: tuple[str, ...]  # the contract's column names, in the file's order
    lines: int | None = None  # a CSV file's lines, counted while hashing it (None: not counted)


@dataclass
class FileCounts:
    file_id: int
    path: str
    rows_read: int = 0
    rows_staged: int = 0
    rows_rejected: int = 0
    duplicates_removed: int = 0


def expand(patterns: list[str]) -> list[Path]:
    """File names, directories (their CSV and Parquet files) and glob patterns -> files, in order."""
    files: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in FORMATS)
        elif glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern))
            if not matches:
                raise InputError(f"{pattern}: no file matches this pattern")
            files += matches
        else:
            files.append(path)
    return files


def sha256(path: Path) -> str:
    return _hash_and_count_lines(path)[0]


def _hash_and_count_lines(path: Path) -> tuple[str, int]:
    """The file's SHA-256 and its number of lines (ending in \\n or \\r\\n; a last line without one
    counts), in the one pass that reads the file. numpy counts at memory speed; bytes.count would
    add half the hashing time."""
    digest, lines, last = hashlib.sha256(), 0, b"\n"
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            lines += int(np.count_nonzero(np.frombuffer(chunk, np.uint8) == ord("\n")))
            last = chunk[-1:]
    return digest.hexdigest(), lines + (last != b"\n")


def csv_columns(path: Path) -> tuple[str, ...]:
    with path.open("rb") as f:
        first = f.readline(1 << 16)
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


def _parquet_columns(wh: Warehouse, path: Path) -> tuple[str, ...]:
    try:
        names = [r[0].lower() for r in wh.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)])]
    except Exception as exc:  # DuckDB raises several exception types for unreadable files
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    if sorted(names) != sorted(RAW_COLUMNS):
        raise InputError(f"{path}: wrong columns {names}; expected {list(RAW_COLUMNS)}")
    return tuple(names)


def inspect(wh: Warehouse, paths: list[Path]) -> list[InputFile]:
    """Check every file can be read before anything is written; hash them."""
    checked = []
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: file not found")
        if not path.is_file():
            raise InputError(f"{path}: not a regular file")
        file_format = FORMATS.get(path.suffix.lower())
        if file_format is None:
            raise InputError(f"{path}: unsupported file type {path.suffix!r}; expected .csv or .parquet")
        columns = csv_columns(path) if file_format == "csv" else _parquet_columns(wh, path)
        digest, lines = _hash_and_count_lines(path)
        checked.append(InputFile(path, file_format, digest, columns, lines if file_format == "csv" else None))
    return checked


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


def _land_csv(wh: Warehouse, f: InputFile, file_id: int) -> None:
    """Raw text of every well-formed line, with its line number; malformed lines to the rejects.

    DuckDB's reader (parallel) is exact when it read one row or reject per line: then rows, rejects
    and the header add up to the file's lines, since each takes at least one line of text and an
    empty line gives nothing. Otherwise (empty lines, a quote left open that swallowed the lines
    after it, a quoted field over several lines) the file is read again line by line; so it is
    when a rejected line has a quote: after a quote error the reader may report part of the line,
    or none of it.
    """
    wh.execute("DROP TABLE IF EXISTS temp.csv_rejects; DROP TABLE IF EXISTS temp.csv_scans")
    # Columns given explicitly: no sniffing (it guesses wrong on small files with bad rows).
    columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in f.columns) + "}"
    wh.execute(
        f"""CREATE OR REPLACE TEMP TABLE {WORK}.landing_{file_id} AS
        SELECT * FROM read_csv(?, auto_detect = false, header = true, columns = {columns}, delim = ',', quote = '"', escape = '"',
                               store_rejects = true, rejects_table = 'csv_rejects', rejects_scan = 'csv_scans',
                               strict_mode = true, null_padding = false)""",
        [str(f.path)],
    )
    # A rejected line's reason comes from splitting its text: the same on both ways of reading.
    rejected = """SELECT line, trim(min(csv_line), chr(13) || chr(10)) AS text,
                         bool_or(error_type = 'UNQUOTED VALUE') AS quote_error
                  FROM temp.csv_rejects GROUP BY line"""
    wh.execute(f"CREATE OR REPLACE TEMP TABLE {WORK}.csv_rejected_lines AS {_split_lines(rejected)}")
    exact = wh.scalar(
        f"""SELECT count(*) + (SELECT count(*) FROM {WORK}.landing_{file_id}) + 1 = ?
                   AND coalesce(bool_and(reason IS NOT NULL AND NOT quote_error AND NOT contains(text, '"')), true)
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
    # counts well-formed rows in file order (from an offset inside a transaction); a row's line
    # is shifted by the malformed lines before it, found from the rows before each run of them.
    numbered = f"SELECT *, rowid - (SELECT min(rowid) FROM {WORK}.landing_{file_id}) AS good_rows_before" \
               f" FROM {WORK}.landing_{file_id}"
    line = "l.good_rows_before + 2"
    shifts = ""
    if wh.scalar(f"SELECT count(*) FROM {WORK}.malformed_{file_id}"):
        line += " + coalesce(m.shift, 0)"
        shifts = f"""ASOF LEFT JOIN (SELECT line - 1 - n AS good_rows_before, max(n) AS shift
                                     FROM (SELECT line, row_number() OVER (ORDER BY line) AS n
                                           FROM {WORK}.malformed_{file_id})
                                     GROUP BY good_rows_before) AS m
                     ON l.good_rows_before >= m.good_rows_before"""
    wh.execute(
        f"""CREATE OR REPLACE TEMP VIEW raw_{file_id} AS
        SELECT {raw}, {_literal(str(f.path))} AS source_file, ({line})::BIGINT AS source_line,
               {file_id}::BIGINT AS file_seq
        FROM ({numbered}) AS l {shifts}"""
    )


def _land_lines(wh: Warehouse, f: InputFile, file_id: int) -> None:
    """`_land_csv`'s tables from the file's lines, read whole by DuckDB and split in SQL."""
    landing = f"{WORK}.landing_{file_id}"
    wh.execute(
        f"""CREATE OR REPLACE TEMP TABLE {landing} AS
        SELECT text FROM read_csv(?, auto_detect = false, header = false, columns = {{'text': 'VARCHAR'}},
                                  delim = {_literal(_NO_DELIMITER)}, quote = '', escape = '')""",
        [str(f.path)],
    )
    # Numbered by rowid, in file order; an empty line is NULL: skipped, but it has its number.
    lines = f"""SELECT * FROM (SELECT rowid - (SELECT min(rowid) FROM {landing}) + 1 AS line, text FROM {landing})
                WHERE line > 1 AND text IS NOT NULL"""
    wh.execute(
        f"""CREATE OR REPLACE TEMP TABLE {WORK}.lines_{file_id} AS
        SELECT line, fields, reason, if(reason IS NULL, NULL, text) AS raw_line FROM ({_split_lines(lines)});
        DROP TABLE {landing}"""
    )
    wh.execute(
        f"""CREATE OR REPLACE TEMP TABLE {WORK}.malformed_{file_id} AS
        SELECT line, reason, raw_line FROM {WORK}.lines_{file_id} WHERE reason IS NOT NULL"""
    )
    # Empty fields are NULL, as DuckDB's reader gives them.
    raw = ", ".join(f"nullif(fields[{f.columns.index(c) + 1}], '') AS {c}" for c in RAW_COLUMNS)
    wh.execute(
        f"""CREATE OR REPLACE TEMP VIEW raw_{file_id} AS
        SELECT {raw}, {_literal(str(f.path))} AS source_file, line AS source_line, {file_id}::BIGINT AS file_seq
        FROM {WORK}.lines_{file_id} WHERE reason IS NULL"""
    )


def _land_parquet(wh: Warehouse, f: InputFile, file_id: int) -> None:
    actual = {r[0].lower(): r[0] for r in wh.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(f.path)])}
    raw = ", ".join(f'"{actual[c]}"::VARCHAR AS {c}' for c in RAW_COLUMNS)
    path = _literal(str(f.path))
    wh.execute(
        f"""CREATE OR REPLACE TEMP VIEW raw_{file_id} AS
        SELECT {raw}, {path} AS source_file, (file_row_number + 1)::BIGINT AS source_line, {file_id}::BIGINT AS file_seq
        FROM read_parquet({path}, file_row_number = true)"""
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
    log.info("parsed %d rows in %.1f s", wh.scalar(f"SELECT count(*) FROM {WORK}.batch_parsed"), time.perf_counter() - t0)
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
    accepted = wh.materialize("batch_accepted", accepted_events(parsed))  # event ids hashed once
    unique = deduplicate_events(accepted)
    if staged_events_of is not None:
        # A copy of a staged event has its conversation: compare with those conversations' events only.
        unique = unique.anti_join(staged_events_of("batch_accepted"), "event_id")
    wh.materialize("batch_events", unique)
    log.info("identified and de-duplicated the events in %.1f s", time.perf_counter() - t0)

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
