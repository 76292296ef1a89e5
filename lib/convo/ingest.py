"""Reading input files into the warehouse: validation, line numbers, rejects, duplicates.

Files are read by DuckDB (streaming, in parallel); Python only reads a file's first line to
check its header and its bytes to hash them. Every data row ends up in exactly one place:
staged, rejected (with its line and reason) or counted as a duplicate.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import duckdb
import ibis

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
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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
        checked.append(InputFile(path, file_format, sha256(path), columns))
    return checked


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _land_csv(wh: Warehouse, f: InputFile, file_id: int) -> None:
    """Raw text of every well-formed line, with its line number; malformed lines to the rejects."""
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
    raw = ", ".join(f"l.{c}" for c in RAW_COLUMNS)
    # rowid counts well-formed rows in file order (from an offset inside a transaction); each
    # malformed line before a row shifts its line by one.
    wh.execute(
        f"""CREATE OR REPLACE TEMP TABLE {WORK}.malformed_{file_id} AS
        SELECT line, min(error_type || ': ' || error_message) AS reason, trim(min(csv_line), chr(13) || chr(10)) AS raw_line,
               line - 2 - (row_number() OVER (ORDER BY line) - 1) AS good_rows_before
        FROM temp.csv_rejects GROUP BY line"""
    )
    # A view, not a copy: parsing reads the landed rows once, numbering them on the way.
    numbered = f"SELECT *, rowid - (SELECT min(rowid) FROM {WORK}.landing_{file_id}) AS good_rows_before" \
               f" FROM {WORK}.landing_{file_id}"
    line = "l.good_rows_before + 2"
    shifts = ""
    if wh.scalar(f"SELECT count(*) FROM {WORK}.malformed_{file_id}"):
        line += " + coalesce(m.shift, 0)"
        shifts = f"""ASOF LEFT JOIN (SELECT good_rows_before, row_number() OVER (ORDER BY line) AS shift
                                     FROM {WORK}.malformed_{file_id}) AS m
                     ON l.good_rows_before >= m.good_rows_before"""
    wh.execute(
        f"""CREATE OR REPLACE TEMP VIEW raw_{file_id} AS
        SELECT {raw}, {_literal(str(f.path))} AS source_file, ({line})::BIGINT AS source_line,
               {file_id}::BIGINT AS file_seq
        FROM ({numbered}) AS l {shifts}"""
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


def stage_batch(wh: Warehouse, by_id: dict[int, InputFile], known_events: ibis.Table | None) -> dict[int, FileCounts]:
    """Type the landed rows; write scratch tables batch_events (new, unique) and batch_rejected.

    `known_events` holds the event ids already staged in the warehouse (None when it is empty).
    """
    ids = sorted(by_id)
    raw = ibis.union(*(wh.table(f"raw_{i}", WORK) for i in ids)) if len(ids) > 1 else wh.table(f"raw_{ids[0]}", WORK)
    # The raw text is not copied along: only rejected rows need it, and they fetch it back.
    parsed = wh.materialize("batch_parsed", parse_raw_events(raw).drop(*RAW_COLUMNS))
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

    unique = deduplicate_events(accepted_events(parsed))
    if known_events is not None:
        unique = unique.anti_join(known_events, "event_id")
    wh.materialize("batch_events", unique)

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
