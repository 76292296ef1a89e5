"""What the site reports about an environment: its published tables and its run history.

Everything is read from the warehouse file, read-only, in one connection: the published tables
directly, the run history and versions through `convo.engine.state`. A warehouse that does not
exist yet gives `None`, and the pages say so instead of failing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from convo.engine import state
from convo.engine.state import CheckRow, FileRunRow, RunRow, TableRunRow
from convo.engine.warehouse import PUBLISHED, open_read_only

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
    con = open_read_only(warehouse)
    try:
        history = state.on_connection(con)
        published = history.published()
        return WarehouseState(
            path=warehouse,
            published_version=published.version,
            published_at=published.published_at,
            tables=_tables(con, primary_keys),
            runs=history.runs(RECENT_RUNS),
            checks=history.checks_of_recent_runs(TREND_RUNS),
            run_tables=history.table_rows(published.version),
            run_files=history.file_rows(published.version),
        )
    finally:
        con.close()


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
