"""State: the run history and the versions, kept in the warehouse (schema `convo_meta`).

This module alone reads and writes that schema; everything else asks it through the typed
objects below. Its tables:

- `runs`, `run_files`, `run_tables`, `run_checks`: what every command that changed or checked an
  environment did (`RunLog` writes them; `StateReader` reads them back);
- `versions`: the state of each version a build wrote (`Versions`): `published` (the newest is
  the current one), `rolled_back` (a rollback stepped back from it; it can be restored until the
  next build), `discarded` (a failed, killed or rolled-back build: its rows are gone) or `expired`
  (older than the retained versions: rows only it could see are gone);
- in the readers' copy of the published version, `published`: which version the copy holds and
  which run, with which code, built it (`stamp_copy`, `stamped_version`).

The builder writes through its `Warehouse`; presentation (reports, the site, `convo runs`) reads
through `read_only`, which opens the file read-only and closes it again, so that it never holds the
writer's lock. The physical versioned tables and the views onto them are `convo.engine.store`'s;
a publish, rollback, discard or expiry calls both, in one transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import duckdb

from convo.engine.warehouse import Warehouse, open_read_only
from convo.provenance import CodeVersion

_META = "convo_meta"
# The states of a version (see above).
_PUBLISHED, _ROLLED_BACK, _DISCARDED, _EXPIRED = "published", "rolled_back", "discarded", "expired"

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {_META};
CREATE TABLE IF NOT EXISTS {_META}.runs (
    run_id BIGINT PRIMARY KEY, environment VARCHAR, command VARCHAR, started_at TIMESTAMP,
    finished_at TIMESTAMP, status VARCHAR, message VARCHAR, published_version BIGINT, full_refresh BOOLEAN);
CREATE TABLE IF NOT EXISTS {_META}.run_files (
    run_id BIGINT, file_id BIGINT, path VARCHAR, sha256 VARCHAR, file_format VARCHAR, action VARCHAR,
    rows_read BIGINT, rows_staged BIGINT, rows_rejected BIGINT, duplicates_removed BIGINT);
CREATE TABLE IF NOT EXISTS {_META}.run_tables (
    run_id BIGINT, table_name VARCHAR, rows BIGINT, inserted BIGINT, retired BIGINT, seconds DOUBLE);
CREATE TABLE IF NOT EXISTS {_META}.run_checks (
    run_id BIGINT, table_name VARCHAR, check_name VARCHAR, severity VARCHAR, success BOOLEAN,
    unexpected_count BIGINT, sample VARCHAR, reason VARCHAR, result JSON);
ALTER TABLE {_META}.runs ADD COLUMN IF NOT EXISTS code_commit VARCHAR;
ALTER TABLE {_META}.runs ADD COLUMN IF NOT EXISTS code_clean BOOLEAN;
ALTER TABLE {_META}.runs ADD COLUMN IF NOT EXISTS config JSON;
CREATE TABLE IF NOT EXISTS {_META}.versions (
    version BIGINT PRIMARY KEY, state VARCHAR NOT NULL, published_at TIMESTAMP, changed_at TIMESTAMP);
"""
# The three added columns: which code (git commit, clean tree or not) and which resolved
# configuration each run used. ADD COLUMN, so that warehouses built before them keep their history.


def location(table: str) -> str:
    """Where a state table lives (`convo_meta.runs`), for documentation that tells people where to look."""
    return f"{_META}.{table}"


@dataclass
class FileRecord:
    """A file a run was given: what it did with it and, read, its rows (read = staged + rejected +
    duplicates removed: `convo.build.contract.counted`)."""

    file_id: int | None
    path: str
    sha256: str | None  # None for a directory entry that is not read
    file_format: str | None
    action: str
    rows_read: int = 0
    rows_staged: int = 0
    rows_rejected: int = 0
    duplicates_removed: int = 0

    def summary(self) -> str:
        return (
            f"{self.path}: {self.rows_read:,} rows read = {self.rows_staged:,} staged + {self.rows_rejected:,}"
            f" rejected + {self.duplicates_removed:,} duplicates"
        )


@dataclass
class TableRecord:
    table_name: str
    rows: int
    inserted: int
    retired: int
    seconds: float


@dataclass
class CheckRecord:
    table_name: str
    check_name: str
    severity: str
    success: bool
    unexpected_count: int | None = None
    sample: str | None = None
    reason: str | None = None
    result: dict = field(default_factory=dict)


@dataclass
class Run:
    run_id: int
    environment: str
    command: str
    full_refresh: bool = False
    status: str = "running"
    message: str | None = None
    published_version: int | None = None
    code: CodeVersion = CodeVersion(None, None)
    config: dict = field(default_factory=dict)
    files: list[FileRecord] = field(default_factory=list)
    tables: list[TableRecord] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)
    report: str | None = None  # the folder of a `convo run`'s reports

    def summary(self) -> dict:
        """What alerts and logs carry."""
        return {
            "run_id": self.run_id,
            "environment": self.environment,
            "command": self.command,
            "status": self.status,
            "message": self.message,
            "published_version": self.published_version,
            "code_commit": self.code.commit,
            "code_clean": self.code.clean,
            "config": self.config,
            "files": [asdict(f) for f in self.files],
            "tables": [asdict(t) for t in self.tables],
            "failed_checks": [asdict(c) | {"result": None} for c in self.checks if not c.success],
        } | ({"report": self.report} if self.report else {})


@dataclass(frozen=True)
class RunRow:
    """One run as the history lists it (without its files, tables and checks)."""

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
    """A recorded check, with the run that recorded it (for trends across runs)."""

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
class Published:
    """The current version and when it was first published (0 and None before the first publish)."""

    version: int
    published_at: dt.datetime | None


@dataclass(frozen=True)
class Expiry:
    """What retention expired: the versions, and the oldest version kept (None when nothing expired)."""

    versions: tuple[int, ...]
    oldest_kept: int | None


def versions_to_expire(published: list[int], keep: int) -> Expiry:
    """Of the published versions (oldest first), those beyond the newest `keep`; `keep` 0 keeps all."""
    ordered = sorted(published)
    if keep <= 0 or len(ordered) <= keep:
        return Expiry((), None)
    return Expiry(tuple(ordered[:-keep]), ordered[-keep])


# A function that runs SQL with parameters and returns every row: `Warehouse.execute` for the
# builder, a plain read-only DuckDB connection for presentation (`on_connection`).
Execute = Callable[[str, list], list[tuple]]


class StateReader:
    """Every read of the run history and the versions.

    Works on a warehouse of any age: a table or column that is not there yet (a history older than
    it, a file whose first command failed) reads as empty or NULL.
    """

    def __init__(self, execute: Execute, *, complete: bool = False):
        self._execute = execute
        self._complete = complete  # every table and column exists: the builder created them

    def _rows(self, sql: str, params: list | None = None) -> list[tuple]:
        return self._execute(sql, params or [])

    def _has(self, table: str, column: str | None = None) -> bool:
        if self._complete:
            return True
        sql = "SELECT count(*) FROM information_schema.columns WHERE table_schema = ? AND table_name = ?"
        params = [_META, table]
        if column is not None:
            sql, params = sql + " AND column_name = ?", [*params, column]
        return self._rows(sql, params)[0][0] > 0

    # -- versions -------------------------------------------------------------------------
    def published(self) -> Published:
        if not self._has("versions"):
            return Published(0, None)
        rows = self._rows(
            f"SELECT version, published_at FROM {_META}.versions WHERE state = ? ORDER BY version DESC LIMIT 1",
            [_PUBLISHED],
        )
        return Published(*rows[0]) if rows else Published(0, None)

    def current_version(self) -> int:
        """The published version (0 before the first publish)."""
        return self.published().version

    def published_versions(self) -> list[int]:
        """The versions that can be current again, oldest first; the newest is current."""
        return self._versions_in(_PUBLISHED)

    def rolled_back_versions(self) -> list[int]:
        """The versions a rollback stepped back from, oldest first: restorable until the next build."""
        return self._versions_in(_ROLLED_BACK)

    def _versions_in(self, state: str) -> list[int]:
        if not self._has("versions"):
            return []
        rows = self._rows(f"SELECT version FROM {_META}.versions WHERE state = ? ORDER BY version", [state])
        return [v for (v,) in rows]

    # -- runs -----------------------------------------------------------------------------
    def _run_rows(self, where: str, params: list, limit: int | None) -> tuple[RunRow, ...]:
        if not self._has("runs"):
            return ()
        code = "code_commit, code_clean" if self._has("runs", "code_commit") else "NULL, NULL"
        rows = self._rows(
            "SELECT run_id, command, started_at, finished_at, status, message, published_version, full_refresh,"
            f" {code} FROM {_META}.runs WHERE {where} ORDER BY run_id DESC" + (" LIMIT ?" if limit is not None else ""),
            [*params, *([limit] if limit is not None else [])],
        )
        return tuple(RunRow(*r) for r in rows)

    def runs(self, limit: int) -> tuple[RunRow, ...]:
        """The newest `limit` runs, newest first."""
        return self._run_rows("true", [], limit)

    def run_row(self, run_id: int) -> RunRow | None:
        found = self._run_rows("run_id = ?", [run_id], None)
        return found[0] if found else None

    def run(self, run_id: int) -> Run | None:
        """A run as recorded, with its files, tables and checks (None if there is no such run)."""
        if not self._has("runs"):
            return None
        code = "code_commit, code_clean, config" if self._has("runs", "config") else "NULL, NULL, NULL"
        rows = self._rows(
            "SELECT run_id, environment, command, full_refresh, status, message, published_version,"
            f" {code} FROM {_META}.runs WHERE run_id = ?",
            [run_id],
        )
        if not rows:
            return None
        *recorded, commit, clean, config = rows[0]
        run = Run(*recorded, code=CodeVersion(commit, clean), config=json.loads(config) if config else {})
        run.files = self._records(FileRecord, "run_files", run_id, "file_id NULLS LAST, path")
        run.tables = self._records(TableRecord, "run_tables", run_id, "table_name")
        run.checks = self._records(CheckRecord, "run_checks", run_id, "table_name, check_name")
        for check in run.checks:
            check.result = json.loads(check.result) if check.result else {}
        return run

    def _records(self, cls: type, table: str, run_id: int, order: str) -> list:
        """The rows of `table` (run_files, run_tables, run_checks) recorded by the run, as `cls`."""
        if not self._has(table):
            return []
        names = ", ".join(f.name for f in fields(cls))
        rows = self._rows(f"SELECT {names} FROM {_META}.{table} WHERE run_id = ? ORDER BY {order}", [run_id])
        return [cls(*r) for r in rows]

    def builds_between(self, after: int, before: int) -> int:
        """How many builds ran with run ids strictly between `after` and `before`."""
        return self._rows(
            f"SELECT count(*) FROM {_META}.runs WHERE run_id > ? AND run_id < ?"
            " AND (command LIKE 'build%' OR command LIKE 'run%')",  # `convo run` builds too
            [after, before],
        )[0][0]

    def table_rows(self, run_id: int) -> tuple[TableRunRow, ...]:
        """The tables the run changed, in the order it recorded them."""
        return tuple(self._records(TableRunRow, "run_tables", run_id, "rowid"))

    def file_rows(self, run_id: int) -> tuple[FileRunRow, ...]:
        """The files the run was given, in the order it recorded them."""
        return tuple(self._records(FileRunRow, "run_files", run_id, "rowid"))

    # -- checks ---------------------------------------------------------------------------
    def checks_of_recent_runs(self, runs: int) -> tuple[CheckRow, ...]:
        """Every check of the newest `runs` runs that recorded checks, oldest run first."""
        if not self._has("run_checks"):
            return ()
        rows = self._rows(
            "SELECT run_id, table_name, check_name, severity, success, unexpected_count, sample, reason"
            f" FROM {_META}.run_checks WHERE run_id IN ("
            f"   SELECT DISTINCT run_id FROM {_META}.run_checks ORDER BY run_id DESC LIMIT ?)"
            " ORDER BY run_id, table_name, check_name",
            [runs],
        )
        return tuple(CheckRow(*r) for r in rows)

    def previous_row_counts(self, version: int) -> dict[str, tuple[int, int]]:
        """Rows per table after the latest successful build before `version`: {table: (rows, run_id)}.

        A build records only the tables it changed, so each table's count comes from the latest
        build that recorded it. Builds whose version was rolled back or discarded do not count.
        """
        if not (self._has("run_tables") and self._has("versions")):
            return {}
        rows = self._rows(
            f"""SELECT t.table_name, arg_max(t.rows, t.run_id), max(t.run_id)
            FROM {_META}.run_tables AS t
            JOIN {_META}.runs AS r ON r.run_id = t.run_id
            JOIN {_META}.versions AS v ON v.version = t.run_id
            WHERE r.status = 'success' AND v.state IN (?, ?) AND t.run_id < ?
            GROUP BY t.table_name""",
            [_PUBLISHED, _EXPIRED, version],
        )
        return {table: (count, run_id) for table, count, run_id in rows}


def on_connection(con: duckdb.DuckDBPyConnection) -> StateReader:
    """Read the state through a plain DuckDB connection (read-only or not)."""
    return StateReader(lambda sql, params: con.execute(sql, params).fetchall())


@contextlib.contextmanager
def read_only(warehouse: Path) -> Iterator[StateReader]:
    """The state of a warehouse file, opened read-only and closed on leaving: presentation never
    holds the builder's lock. FileNotFoundError when there is no file yet; WarehouseLocked when a
    writer has it open."""
    con = open_read_only(warehouse)
    try:
        con.execute("PRAGMA disable_progress_bar")  # SET fails in a Jupyter kernel without ipywidgets
        yield on_connection(con)
    finally:
        con.close()


def _create_schema(wh: Warehouse) -> None:
    wh.execute(_DDL)


class RunLog(StateReader):
    """Writes the run history (the builder's connection)."""

    def __init__(self, warehouse: Warehouse):
        _create_schema(warehouse)
        super().__init__(warehouse.execute, complete=True)
        self.wh = warehouse

    def start(
        self,
        environment: str,
        command: str,
        *,
        full_refresh: bool = False,
        code: CodeVersion | None = None,
        config: dict | None = None,
    ) -> Run:
        run_id = self.wh.scalar(f"SELECT coalesce(max(run_id), 0) + 1 FROM {_META}.runs")
        config = config or {}
        code = code or CodeVersion(None, None)
        self.wh.execute(
            f"INSERT INTO {_META}.runs (run_id, environment, command, started_at, status, full_refresh,"
            " code_commit, code_clean, config) VALUES (?, ?, ?, now()::TIMESTAMP, 'running', ?, ?, ?, ?)",
            [run_id, environment, command, full_refresh, code.commit, code.clean, json.dumps(config)],
        )
        return Run(run_id, environment, command, full_refresh, code=code, config=config)

    def mark_interrupted(self) -> list[dict]:
        """Runs still 'running' when a new command holds the lock died part-way: marked failed,
        and returned (run_id, command, started_at) for the alert that says so."""
        found = [
            dict(run_id=r, command=c, started_at=t)
            for r, c, t in self.wh.execute(
                f"SELECT run_id, command, started_at FROM {_META}.runs WHERE status = 'running' ORDER BY run_id"
            )
        ]
        self.wh.execute(
            f"UPDATE {_META}.runs SET status = 'failed', message = 'interrupted: the process stopped part-way',"
            " finished_at = now()::TIMESTAMP WHERE status = 'running'"
        )
        return found

    def save(self, run: Run) -> None:
        """Write the run's state and records so far, the run still going: `convo run` records its
        build before its notebooks read it. A later `save` or `finish` replaces what this wrote."""
        with self.wh.transaction():
            self._write(run)

    def finish(self, run: Run) -> None:
        """Write the run's outcome and records in one transaction (one commit, not one per row)."""
        with self.wh.transaction():
            self._write(run)
            self.wh.execute(f"UPDATE {_META}.runs SET finished_at = now()::TIMESTAMP WHERE run_id = ?", [run.run_id])

    def _write(self, run: Run) -> None:
        self.wh.execute(
            f"UPDATE {_META}.runs SET status = ?, message = ?, published_version = ? WHERE run_id = ?",
            [run.status, run.message, run.published_version, run.run_id],
        )
        for table, records in (("run_files", run.files), ("run_tables", run.tables), ("run_checks", run.checks)):
            self.wh.execute(f"DELETE FROM {_META}.{table} WHERE run_id = ?", [run.run_id])
            if not records:
                continue
            columns = list(asdict(records[0]))
            rows = [
                [
                    run.run_id,
                    *(json.dumps(v, default=str) if c == "result" else v for c, v in asdict(record).items()),
                ]
                for record in records
            ]
            marks = ", ".join("?" * (len(columns) + 1))
            self.wh.execute_many(f"INSERT INTO {_META}.{table} (run_id, {', '.join(columns)}) VALUES ({marks})", rows)


class Versions(StateReader):
    """Writes the versions' states (the builder's connection). Call each inside the transaction
    that switches the store's views, so that the views and the states change together."""

    def __init__(self, warehouse: Warehouse):
        _create_schema(warehouse)
        super().__init__(warehouse.execute, complete=True)
        self.wh = warehouse

    def record_published(self, version: int) -> None:
        self.wh.execute(
            f"INSERT INTO {_META}.versions VALUES (?, ?, now(), now())"
            " ON CONFLICT (version) DO UPDATE SET state = excluded.state, changed_at = now()",
            [version, _PUBLISHED],
        )

    def record_rollback(self, to: int) -> None:
        """Version `to` is current: it and older published or rolled-back versions are published,
        newer ones rolled back. Works both ways until the next build discards the rolled-back ones."""
        self.wh.execute(
            f"UPDATE {_META}.versions SET changed_at = now(), state = CASE WHEN version <= ? THEN ? ELSE ? END"
            " WHERE state IN (?, ?)",
            [to, _PUBLISHED, _ROLLED_BACK, _PUBLISHED, _ROLLED_BACK],
        )

    def record_discarded_after(self, version: int) -> None:
        """Every version after `version` is discarded (its rows are gone from the store)."""
        self.wh.execute(
            f"UPDATE {_META}.versions SET state = ?, changed_at = now() WHERE version > ? AND state <> ?",
            [_DISCARDED, version, _DISCARDED],
        )

    def expire(self, keep: int) -> Expiry:
        """Mark the published versions beyond the newest `keep` expired, and say which they are."""
        expiry = versions_to_expire(self.published_versions(), keep)
        if expiry.versions:
            self.wh.execute(
                f"UPDATE {_META}.versions SET state = ?, changed_at = now() WHERE version < ? AND state = ?",
                [_EXPIRED, expiry.oldest_kept, _PUBLISHED],
            )
        return expiry


# -- the readers' copy ----------------------------------------------------------------------------
def stamp_copy(wh: Warehouse, copy: str, version: int) -> None:
    """Write `published` into the attached copy catalog `copy`: the version it holds, when it was
    published (now: it is written just before the store publishes), and the run, with its code
    and configuration, that built it."""
    catalog = wh.con.current_catalog
    wh.execute(f"CREATE SCHEMA IF NOT EXISTS {copy}.{_META}")
    wh.execute(
        f"CREATE OR REPLACE TABLE {copy}.{_META}.published AS SELECT environment, run_id AS version,"
        " now()::TIMESTAMP AS published_at, command AS built_by_command, started_at AS built_at,"
        f' code_commit, code_clean, config FROM "{catalog}".{_META}.runs WHERE run_id = ?',
        [version],
    )


def stamped_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The version a readers' copy holds, by its stamp (DuckDB's error if it has none)."""
    return con.execute(f"SELECT max(version) FROM {_META}.published").fetchone()[0]
