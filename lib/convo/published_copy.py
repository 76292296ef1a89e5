"""The file readers open: a read-only copy of the published version, swapped in whole.

The environment's warehouse file belongs to the builder: DuckDB lets one process write a file,
and only while no other process has it open, even read-only. So readers (analysts, BI tools,
notebooks of their own) open `<env>.published.duckdb` beside it instead. Each publish or rollback
writes the new version's tables to a fresh file and renames it over that one (`os.replace`,
atomic on POSIX). Nothing ever opens the published file for writing, so a reader's lock never
blocks a build; a reader that has it open keeps reading the file it opened (its descriptor still
points at it, the disk space is freed when it closes), one whole version; a reader that opens it
after the rename gets the new version.

The copy holds every published table and view in schema `main` (view models stay views, over
the copy's own tables) and one row in `convo_meta.published`: which version it is, which run
built it, with which code.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import duckdb

from convo.store import Store, visible
from convo.warehouse import META, STORE, Warehouse

ALIAS = "convo_published_copy"
SUFFIX = ".published.duckdb"


def path_of(warehouse: Path) -> Path:
    """`warehouse/prod.duckdb` -> `warehouse/prod.published.duckdb`."""
    return warehouse.with_name(warehouse.name.removesuffix(".duckdb") + SUFFIX)


def _writing_path(warehouse: Path) -> Path:
    return path_of(warehouse).with_name(path_of(warehouse).name + ".writing")


def _remove(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)


def write(wh: Warehouse, store: Store, version: int, views: Callable[[], dict[str, str]]) -> Path:
    """Write version `version` to a new file beside the published copy and return its path.

    `views()` is called with the copy as the current catalog and returns each view model's SQL
    over the tables there, unqualified: a view then reads the tables of whatever file it is in.
    The published copy is not touched: `swap` puts the new file in its place.
    """
    target = _writing_path(wh.path)
    _remove(target)  # what a killed earlier attempt left
    catalog = wh.con.current_catalog
    literal = "'" + str(target).replace("'", "''") + "'"  # ATTACH takes no parameters
    wh.execute(f"ATTACH {literal} AS {ALIAS}")
    try:
        for name in store.physical_tables():
            cols = ", ".join(f'"{c}"' for c in store.model_columns(name))
            wh.execute(f'CREATE TABLE {ALIAS}.main."{name}" AS SELECT {cols} FROM "{catalog}".{STORE}."{name}"'
                       f" WHERE {visible(version)}")
        wh.execute(f"CREATE SCHEMA {ALIAS}.{META}")
        # Written before the store publishes: the time it is written is the time it is published.
        wh.execute(
            f"CREATE TABLE {ALIAS}.{META}.published AS SELECT environment, run_id AS version,"
            " now()::TIMESTAMP AS published_at, command AS built_by_command, started_at AS built_at,"
            f' code_commit, code_clean, config FROM "{catalog}".{META}.runs WHERE run_id = ?',
            [version],
        )
        wh.execute(f"USE {ALIAS}")
        try:
            for name, sql in views().items():
                wh.execute(f'CREATE VIEW main."{name}" AS {sql}')
        finally:
            wh.execute(f'USE "{catalog}"')
    except BaseException:
        wh.execute(f"DETACH {ALIAS}")
        _remove(target)
        raise
    wh.execute(f"DETACH {ALIAS}")  # checkpoints: the file is complete, with no WAL beside it
    return target


def swap(written: Path, warehouse: Path) -> None:
    """Put a file from `write` in place of the published copy, atomically."""
    os.replace(written, path_of(warehouse))


def discard(warehouse: Path) -> None:
    """Remove a written copy that will not be published."""
    _remove(_writing_path(warehouse))


def version_in(warehouse: Path) -> int | None:
    """The version the published copy holds (None if there is no readable copy)."""
    path = path_of(warehouse)
    if not path.exists():
        return None
    with contextlib.suppress(duckdb.Error):
        con = duckdb.connect(str(path), read_only=True)
        try:
            return con.execute(f"SELECT max(version) FROM {META}.published").fetchone()[0]
        finally:
            con.close()
    return None
