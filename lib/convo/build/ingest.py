"""DuckDB's reader of input files: line numbers, rejects, duplicates, under the ingestion contract.

The contract (`contract.py`, shared with the Spark reader) checks and hashes each file first
(Python reads its first line and hashes its bytes, counting its lines on the way); then the files
are read by DuckDB (streaming, in parallel). Every data row ends up in exactly one place: staged,
rejected (with its line and reason) or counted as a duplicate.

A CSV file has one record per line: a quoted field cannot span lines, empty lines are skipped but
counted, and a line that cannot be split into the six fields is rejected; the next line is read
normally.
"""

from __future__ import annotations

import datetime
import gzip
import logging
import time
from collections.abc import Callable

import duckdb
import ibis
import pyarrow as pa

from convo.build.contract import (
    FIELD,
    FOUND_COLUMNS,
    LINE_TOO_LONG,
    LONG_LINE_SHOWN,
    MAX_LINE_BYTES,
    MISSING_COLUMNS,
    NOT_UTF8,
    QUOTED,
    TOO_MANY_COLUMNS,
    UNQUOTED_VALUE,
    InputError,
    InputFile,
    counted,
)
from convo.engine.state import FileRecord
from convo.engine.warehouse import WORK, Warehouse
from convo.models.staging import (
    RAW_COLUMNS,
    accepted_events,
    first_occurrences,
    parse_raw_events,
    repeated_events,
)

log = logging.getLogger(__name__)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# Reads a file's lines whole: no quotes, a delimiter text does not contain (a line with it would
# fail the read, not be cut).
_NO_DELIMITER = "\x01\x02\x03\x04"


def _split_lines(lines: str) -> str:
    """SQL: the rows of the query `lines` (a column `text`) with the line's `fields` and `reason`,
    why it is not a record of the six fields (NULL when it is): the contract's rule and reasons.
    """
    n = len(RAW_COLUMNS)
    counts = f"{_literal(FOUND_COLUMNS)} || found"
    unquoted = "CASE WHEN ltrim(x) LIKE '\"%' THEN replace(trim(x)[2:-2], '\"\"', '\"') ELSE x END"
    return f"""
    SELECT *, CASE WHEN found < {n} THEN {_literal(MISSING_COLUMNS + ": ")} || {counts}
                   WHEN found > {n} THEN {_literal(TOO_MANY_COLUMNS + ": ")} || {counts}
                   WHEN fields IS NULL THEN {_literal(UNQUOTED_VALUE)} END AS reason
    FROM (SELECT *, CASE WHEN fields IS NULL
                         THEN len(string_split(regexp_replace(text, {_literal(QUOTED)}, '', 'g'), ','))
                         WHEN len(list_filter(fields[{n + 1}:], lambda x: x <> '')) = 0 THEN least(len(fields), {n})
                         ELSE len(fields) END AS found
          FROM (SELECT *, CASE WHEN NOT contains(text, '"') THEN string_split(text, ',')
                               WHEN regexp_full_match(text, {_literal(f"(?:{FIELD})(?:,(?:{FIELD}))*")})
                               THEN list_transform(regexp_extract_all(text || ',', {_literal(f"({FIELD}),")}, 1),
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


def _drop_landed(wh: Warehouse, ids: list[int]) -> None:
    """Free the landed text of the files once their rows are parsed and their rejects written."""
    for i in ids:
        wh.execute(
            f"DROP VIEW IF EXISTS {WORK}.raw_{i}; DROP TABLE IF EXISTS {WORK}.landing_{i};"
            f" DROP TABLE IF EXISTS {WORK}.lines_{i}"
        )


def stage_batch(
    wh: Warehouse,
    by_id: dict[int, InputFile],
    staged_events_of: Callable[[str], ibis.Table] | None,
    window: tuple[datetime.datetime, datetime.datetime],
) -> dict[int, FileRecord]:
    """Type the landed rows; write scratch tables batch_events (new, unique) and batch_rejected.

    `staged_events_of(table)` reads the events already staged for the conversations in the
    `conversation_id` column of a scratch table (None when nothing is staged yet); `window` holds
    the first and last accepted event time. Returns each file's record with its counts.

    batch_events is a view over the parsed rows: the new events are held in memory once (a build's
    biggest scratch data), and the statement that stores them de-duplicates them on the way.
    """
    ids = sorted(by_id)
    raw = ibis.union(*(wh.table(f"raw_{i}", WORK) for i in ids)) if len(ids) > 1 else wh.table(f"raw_{ids[0]}", WORK)
    t0 = time.perf_counter()
    # The raw text is not copied along: only rejected rows need it, and they fetch it back. Nor is
    # the file's name, the same on every row of a file: the accepted rows get it from batch_sources.
    parsed = wh.materialize("batch_parsed", parse_raw_events(raw, window).drop(*RAW_COLUMNS, "source_file"))
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
    _drop_landed(wh, ids)

    t0 = time.perf_counter()
    sources = wh.materialize(
        "batch_sources",
        ibis.memtable(
            {"file_seq": ids, "source_file": [str(by_id[i].path) for i in ids]},
            schema={"file_seq": "int64", "source_file": "string"},
        ),
    )
    wh.execute(
        f"CREATE OR REPLACE TEMP VIEW batch_accepted AS {wh.compile(accepted_events(parsed.join(sources, 'file_seq')))}"
    )
    accepted = wh.table("batch_accepted", WORK)
    # Parsing hashed the event ids: what de-duplication needs apart from the rows themselves is small,
    # the ids seen twice in the batch and those staged before, and is written once.
    unique = first_occurrences(accepted, wh.materialize("batch_repeated", repeated_events(accepted)))
    if staged_events_of is not None:
        # A copy of a staged event has its conversation: compare with those conversations' events only.
        # Their ids are copied: the build trims that snapshot of the staged events later.
        staged_ids = wh.materialize("batch_staged_ids", staged_events_of("batch_accepted").select("event_id"))
        unique = unique.anti_join(staged_ids, "event_id")
    wh.execute(f"CREATE OR REPLACE TEMP VIEW batch_events AS {wh.compile(unique)}")
    log.info("de-duplicated the events in %.1f s", time.perf_counter() - t0)

    found = {}
    for table, col, kind in (
        ("batch_parsed", "file_seq", "read"),  # the well-formed rows
        ("batch_rejected", "file_id", "rejected"),
        ("batch_events", "file_seq", "staged"),
    ):
        for file_id, n in wh.execute(f"SELECT {col}, count(*) FROM {WORK}.{table} GROUP BY 1"):
            found[kind, file_id] = n
    return {
        i: counted(
            i,
            by_id[i],
            read=found.get(("read", i), 0) + wh.scalar(f"SELECT count(*) FROM {WORK}.malformed_{i}"),
            staged=found.get(("staged", i), 0),
            rejected=found.get(("rejected", i), 0),
        )
        for i in ids
    }
