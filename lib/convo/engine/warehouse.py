"""The DuckDB warehouse file: connection, schemas and transactions."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import ibis
from ibis.backends.duckdb import Backend
from ibis.backends.sql.datatypes import DuckDBType

# Physical, versioned tables; the build's scratch space; views for audits (the unpublished
# version, and the rows an incremental build changed in it). The run history and versions have
# their own schema, which only `convo.engine.state` reads and writes.
# Scratch tables are TEMP: in memory, spilled to disk past the memory limit, never written to the file.
STORE, WORK, CANDIDATE, CHANGES = "convo_store", "temp", "convo_candidate", "convo_changes"
PUBLISHED = "main"


class WarehouseLocked(RuntimeError):
    pass


def _missing(path: Path) -> FileNotFoundError:
    return FileNotFoundError(f"{path}: no warehouse here yet; run `convo build` first")


@contextlib.contextmanager
def _lock_reported(path: Path) -> Iterator[None]:
    """DuckDB's error for a file another process holds becomes WarehouseLocked, naming the file."""
    try:
        yield
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseLocked(f"{path} is open in another process: {exc}") from exc
        raise


def open_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    """A plain read-only DuckDB connection to the file, for presentation: no Ibis, no writer lock."""
    if not Path(path).exists():
        raise _missing(path)
    with _lock_reported(path):
        return duckdb.connect(str(path), read_only=True)


class Warehouse:
    """One environment's DuckDB file, opened through Ibis."""

    def __init__(self, path: Path, *, threads: int = 2, memory_limit: str = "4GB", read_only: bool = False):
        self.path = Path(path)
        self.read_only = read_only
        self._settings = dict(threads=threads, memory_limit=memory_limit)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise _missing(self.path)
        self.connect()
        if not read_only:
            for schema in (STORE, CANDIDATE):
                self.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")

    def connect(self) -> None:
        with _lock_reported(self.path):
            self.con: Backend = ibis.duckdb.connect(
                str(self.path),
                read_only=self.read_only,
                temp_directory=str(self.path.with_name(self.path.name + ".tmp")),
                **self._settings,
            )
        # The progress bar is for people watching a terminal, never for logs or notebooks. PRAGMA,
        # not SET: in a Jupyter kernel DuckDB refuses `SET enable_progress_bar` without ipywidgets.
        self.execute(f"PRAGMA {'enable' if sys.stderr.isatty() else 'disable'}_progress_bar")

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """Close the connection for a while, so that other clients (GX, notebooks) can open the file."""
        self.close()
        try:
            yield
        finally:
            self.connect()

    @contextlib.contextmanager
    def read_only_meanwhile(self) -> Iterator[None]:
        """Reopen the file read-only for a while, so that other processes can open it read-only
        too (DuckDB lets many processes read a file that none writes)."""
        self.close()
        was_read_only, self.read_only = self.read_only, True
        try:
            self.connect()
            try:
                yield
            finally:
                self.close()
        finally:
            self.read_only = was_read_only
            self.connect()

    def execute(self, sql: str, params: list | None = None) -> list[tuple]:
        """Run SQL and fetch every row (an unconsumed result would block the connection)."""
        cursor = self.con.con.execute(sql, params or [])
        return cursor.fetchall() if cursor.description else []

    def execute_many(self, sql: str, rows: list[list]) -> None:
        """Run one statement for each parameter row."""
        self.con.con.executemany(sql, rows)

    def scalar(self, sql: str, params: list | None = None):
        rows = self.execute(sql, params)
        return rows[0][0] if rows else None

    def compile(self, expr: ibis.Table) -> str:
        """SQL for an expression, typed exactly as Ibis types it, in-memory tables registered first.

        The casts matter: DuckDB widens some results (SUM of BIGINT is HUGEINT) where Ibis says
        int64, and a stored table must keep one type whatever the path that wrote it.
        """
        self.con._run_pre_execute_hooks(expr)  # ibis's own step before executing; public API has none
        typed = ", ".join(
            f'CAST("{name}" AS {DuckDBType.to_string(t)}) AS "{name}"' for name, t in expr.schema().items()
        )
        return f"SELECT {typed} FROM ({self.con.compile(expr)})"

    def has_table(self, name: str, schema: str) -> bool:
        catalog_and_schema = ("temp", "main") if schema == WORK else (self.con.current_catalog, schema)
        return bool(
            self.scalar(
                "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND table_name = ?",
                [*catalog_and_schema, name],
            )
        )

    def columns(self, name: str, schema: str) -> list[tuple[str, str]]:
        """The (name, type) of each column of an existing table, in order. DESCRIBE, not
        information_schema.columns: a build asks about 80 times, and DESCRIBE takes a tenth of the time."""
        return [(column, data_type) for column, data_type, *_ in self.execute(f'DESCRIBE "{schema}"."{name}"')]

    def table(self, name: str, schema: str) -> ibis.Table:
        return self.con.table(name, database=("temp", "main") if schema == WORK else schema)

    def materialize(self, name: str, expr: ibis.Table | str) -> ibis.Table:
        """Write an expression (or SQL) to a scratch table and return it as an Ibis table."""
        if isinstance(expr, str):
            self.execute(f'CREATE OR REPLACE TEMP TABLE {WORK}."{name}" AS {expr}')
            return self.table(name, WORK)
        return self.con.create_table(name, expr, temp=True, overwrite=True)  # also registers memtables

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together or not at all (DDL included)."""
        self.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def close(self) -> None:
        self.con.disconnect()
