"""The DuckDB warehouse file: connection, schemas and transactions."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import ibis
from ibis.backends.duckdb import Backend

# Physical, versioned tables; run history; the build's scratch space; views for audits.
STORE, META, WORK, CANDIDATE = "convo_store", "convo_meta", "convo_work", "convo_candidate"
PUBLISHED = "main"


class WarehouseLocked(RuntimeError):
    pass


class Warehouse:
    """One environment's DuckDB file, opened through Ibis."""

    def __init__(self, path: Path, *, threads: int = 2, memory_limit: str = "4GB", read_only: bool = False):
        self.path = Path(path)
        self.read_only = read_only
        self._settings = dict(threads=threads, memory_limit=memory_limit)
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no warehouse here yet; run `convo build` first")
        self.connect()
        if not read_only:
            for schema in (STORE, META, WORK, CANDIDATE):
                self.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")

    def connect(self) -> None:
        try:
            self.con: Backend = ibis.duckdb.connect(
                str(self.path),
                read_only=self.read_only,
                temp_directory=str(self.path.with_name(self.path.name + ".tmp")),
                **self._settings,
            )
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise WarehouseLocked(f"{self.path} is open in another process: {exc}") from exc
            raise
        # The progress bar is for people watching a terminal, never for logs or notebooks.
        self.execute(f"SET enable_progress_bar = {'true' if sys.stderr.isatty() else 'false'}")

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """Close the connection for a while, so that other clients (GX, notebooks) can open the file."""
        self.close()
        try:
            yield
        finally:
            self.connect()

    def execute(self, sql: str, params: list | None = None) -> list[tuple]:
        """Run SQL and fetch every row (an unconsumed result would block the connection)."""
        cursor = self.con.con.execute(sql, params or [])
        return cursor.fetchall() if cursor.description else []

    def scalar(self, sql: str, params: list | None = None):
        rows = self.execute(sql, params)
        return rows[0][0] if rows else None

    def compile(self, expr: ibis.Table) -> str:
        return self.con.compile(expr)

    def has_table(self, name: str, schema: str) -> bool:
        return bool(
            self.scalar(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [schema, name],
            )
        )

    def columns(self, name: str, schema: str) -> list[tuple[str, str]]:
        return self.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [schema, name],
        )

    def table(self, name: str, schema: str) -> ibis.Table:
        return self.con.table(name, database=schema)

    def materialize(self, name: str, expr: ibis.Table | str) -> ibis.Table:
        """Write an expression (or SQL) to a scratch table and return it as an Ibis table."""
        if isinstance(expr, str):
            self.execute(f'CREATE OR REPLACE TABLE {WORK}."{name}" AS {expr}')
            return self.table(name, WORK)
        return self.con.create_table(name, expr, database=WORK, overwrite=True)  # also registers memtables

    def clear_scratch(self) -> None:
        for (name,) in self.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [WORK]):
            self.execute(f'DROP TABLE IF EXISTS {WORK}."{name}"')

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
