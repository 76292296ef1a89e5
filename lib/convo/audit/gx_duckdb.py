"""Make Great Expectations 1.24 keep one SQLAlchemy connection open per DuckDB engine.

GX closes a pooled SQLAlchemy connection (which rolls back) before it fetches the rows of a
metric query. DuckDB drops the pending result on rollback, so every SQL metric fails with
"list index out of range" and every expectation reports success=False without a value. GX
already avoids this for the dialects listed in the private tuple
`_PERSISTED_CONNECTION_DIALECTS` (sqlite, mssql, ...): for those it creates the engine with a
`StaticPool` and keeps one connection open. Adding duckdb there fixes it.

Checked on duckdb 1.5.6 with great-expectations 1.24.1 (still needed). It patches a private GX
name, so re-check it on every GX upgrade: `tests/test_quality.py` runs a real SQL expectation
and fails if this stops working.
"""

from __future__ import annotations

import great_expectations.execution_engine.sqlalchemy_execution_engine as _engine

DIALECT = "duckdb"


class _DialectName(str):
    """A dialect name GX can treat like its `GXSqlDialect` members.

    GX compares entries of the tuple in two ways: `connection_string.startswith(d.value)` when it
    creates the engine, and `dialect_name in (...)` when it opens a connection. A `str` subclass
    with a `value` property satisfies both.
    """

    @property
    def value(self) -> str:
        return str(self)


def keep_duckdb_connections() -> None:
    """Register duckdb as a persisted-connection dialect (idempotent)."""
    if DIALECT not in _engine._PERSISTED_CONNECTION_DIALECTS:
        _engine._PERSISTED_CONNECTION_DIALECTS = (*_engine._PERSISTED_CONNECTION_DIALECTS, _DialectName(DIALECT))
