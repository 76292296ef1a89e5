"""What the site reports about an environment: its published tables and its run history.

Everything is read from the warehouse file, read-only, in one connection. A warehouse that does
not exist yet gives `None`, and the pages say so instead of failing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from convo.engine.warehouse import META, PUBLISHED, WarehouseLocked

SAMPLE_ROWS = 5
RECENT_RUNS = 50  # runs listed on the runs page
TREND_RUNS = 15  # runs with checks shown in the data-quality trend


@dataclass(frozen=True)
class PublishedTable:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type), in table order
    rows: int
    sample: tuple[tuple, ...]  # a few rows, ordered by the primary key when it is known

    @property
    def types(self) -> dict[str, str]:
        return dict(self.columns)


@dataclass(frozen=True)
class RunRow:
    run_id: int
    command: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    status: str
    message: str | None
    published_version: int | None
    full_refresh: bool
    code_commit: str | None = None  # which code ran (convo/provenance.py); unknown in older histories
    code_clean: bool | None = None

    @property
    def seconds(self) -> float | None:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None


@dataclass(frozen=True)
class CheckRow:
    run_id: int
    table_name: str
    check_name: str
    severity: str
    success: bool
    unexpected_count: int | None
    sample: str | None
    reason: str | None


@dataclass(frozen=True)
class TableRunRow:
    run_id: int
    table_name: str
    rows: int
    inserted: int
    retired: int
    seconds: float


@dataclass(frozen=True)
class FileRunRow:
    run_id: int
    path: str
    action: str
    rows_read: int | None
    rows_staged: int | None
    rows_rejected: int | None
    duplicates_removed: int | None


@dataclass(frozen=True)
class WarehouseState:
    path: Path
    published_version: int  # 0 before the first publish
    published_at: dt.datetime | None
    tables: dict[str, PublishedTable]
    runs: tuple[RunRow, ...]  # newest first
    checks: tuple[CheckRow, ...]  # every check of the last TREND_RUNS runs that ran checks
    run_tables: tuple[TableRunRow, ...] = field(default=())  # of the published version's build
    run_files: tuple[FileRunRow, ...] = field(default=())  # of the published version's build

    @property
    def check_run_ids(self) -> list[int]:
        """Runs that recorded checks, oldest first."""
        return sorted({c.run_id for c in self.checks})

    @property
    def latest_checks(self) -> list[CheckRow]:
        ids = self.check_run_ids
        return [c for c in self.checks if c.run_id == ids[-1]] if ids else []

    def run(self, run_id: int) -> RunRow | None:
        return next((r for r in self.runs if r.run_id == run_id), None)


def read(warehouse: Path, primary_keys: dict[str, tuple[str, ...]]) -> WarehouseState | None:
    """The state of the warehouse file, or None when there is none yet."""
    if not warehouse.exists():
        return None
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseLocked(f"{warehouse} is open in another process: {exc}") from exc
        raise
    try:
        meta = {
            name
            for (name,) in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [META]
            ).fetchall()
        }
        version, published_at = _published(con) if "versions" in meta else (0, None)
        runs = _runs(con) if "runs" in meta else ()
        return WarehouseState(
            path=warehouse,
            published_version=version,
            published_at=published_at,
            tables=_tables(con, primary_keys),
            runs=runs,
            checks=_checks(con) if "run_checks" in meta else (),
            run_tables=_rows(con, TableRunRow, "run_tables", version) if "run_tables" in meta else (),
            run_files=_rows(con, FileRunRow, "run_files", version) if "run_files" in meta else (),
        )
    finally:
        con.close()


def _published(con: duckdb.DuckDBPyConnection) -> tuple[int, dt.datetime | None]:
    row = con.execute(
        f"SELECT version, published_at FROM {META}.versions WHERE state = 'published' ORDER BY version DESC LIMIT 1"
    ).fetchone()
    return (row[0], row[1]) if row else (0, None)


def _tables(con: duckdb.DuckDBPyConnection, primary_keys: dict[str, tuple[str, ...]]) -> dict[str, PublishedTable]:
    columns: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = ? ORDER BY table_name, ordinal_position",
        [PUBLISHED],
    ).fetchall():
        columns.setdefault(table, []).append((column, data_type))
    tables = {}
    for name, cols in columns.items():
        quoted = f'{PUBLISHED}."{name}"'
        # Ordered samples keep the site identical between builds of the same data.
        order = ", ".join(f'"{k}"' for k in primary_keys.get(name, ()) if k in dict(cols)) or "ALL"
        sample = con.execute(f"SELECT * FROM {quoted} ORDER BY {order} LIMIT {SAMPLE_ROWS}").fetchall()
        rows = con.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]
        tables[name] = PublishedTable(name, tuple(cols), rows, tuple(sample))
    return tables


def _runs(con: duckdb.DuckDBPyConnection) -> tuple[RunRow, ...]:
    recorded = con.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = ?"
        " AND table_name = 'runs' AND column_name = 'code_commit'",
        [META],
    ).fetchone()[0]
    code = "code_commit, code_clean" if recorded else "NULL, NULL"  # a history older than the columns
    rows = con.execute(
        f"SELECT run_id, command, started_at, finished_at, status, message, published_version, full_refresh, {code}"
        f" FROM {META}.runs ORDER BY run_id DESC LIMIT {RECENT_RUNS}"
    ).fetchall()
    return tuple(RunRow(*r) for r in rows)


def _checks(con: duckdb.DuckDBPyConnection) -> tuple[CheckRow, ...]:
    rows = con.execute(
        "SELECT run_id, table_name, check_name, severity, success, unexpected_count, sample, reason"
        f" FROM {META}.run_checks WHERE run_id IN ("
        f"   SELECT DISTINCT run_id FROM {META}.run_checks ORDER BY run_id DESC LIMIT {TREND_RUNS})"
        " ORDER BY run_id, table_name, check_name"
    ).fetchall()
    return tuple(CheckRow(*r) for r in rows)


def _rows(con: duckdb.DuckDBPyConnection, cls: type, table: str, run_id: int) -> tuple:
    names = [f for f in cls.__dataclass_fields__]
    rows = con.execute(
        f"SELECT {', '.join(names)} FROM {META}.{table} WHERE run_id = ? ORDER BY rowid", [run_id]
    ).fetchall()
    return tuple(cls(*r) for r in rows)
