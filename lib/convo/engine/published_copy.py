"""The file readers open: a read-only copy of the published version, swapped in whole.

The environment's warehouse file belongs to the builder: DuckDB lets one process write a file,
and only while no other process has it open, even read-only. So readers (analysts, BI tools,
notebooks of their own) open `<env>.published.duckdb` beside it instead. Each publish or rollback
writes the new version to a fresh file (a byte copy of the current one plus the rows that differ,
which costs a fraction of writing every row) and renames it over that one (`os.replace`, atomic
on POSIX). Nothing ever opens the published file for writing, so a reader's lock never
blocks a build; a reader that has it open keeps reading the file it opened (its descriptor still
points at it, the disk space is freed when it closes), one whole version; a reader that opens it
after the rename gets the new version.

The copy holds every published table and view in schema `main` (view models stay views, over
the copy's own tables) and a stamp written by `convo.engine.state`: which version it is, which run
built it, with which code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb

from convo.engine import state
from convo.engine.store import FROM, TO, Store, visible
from convo.engine.warehouse import STORE, Warehouse

log = logging.getLogger(__name__)

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


def _copied_tables(wh: Warehouse) -> set[str]:
    # The alias is a constant, written into the SQL: with it as a parameter, DuckDB took 1.5 s here.
    rows = wh.execute(
        f"SELECT table_name FROM duckdb_tables() WHERE database_name = '{ALIAS}' AND schema_name = 'main'"
    )
    return {name for (name,) in rows}


def _only_in(version: int, other: int) -> str:
    """The rows version `version` sees and version `other` does not. Exact, given `visible(version)`:
    going forward they were written after `other`, going back they were retired by `other`. The
    first form is a range on `_valid_from`, so a build reads only the end of each table."""
    since = f"{FROM} > {other}" if other < version else f"{TO} <= {other}"
    return f"{visible(version)} AND {since}"


def _copy_table(wh: Warehouse, name: str, cols: str, source: str, version: int) -> None:
    wh.execute(f'CREATE TABLE {ALIAS}.main."{name}" AS SELECT {cols} FROM {source} WHERE {visible(version)}')


def _apply_difference(
    wh: Warehouse, name: str, cols: str, source: str, key: tuple[str, ...], base: int, version: int
) -> None:
    """Turn the copy's table from version `base` into version `version`: delete the rows only `base`
    sees (by key: a published version has one row per key, its audit checks it), insert the rows only
    `version` sees. Works both ways, for a publish and for a rollback."""
    keys = ", ".join(f'"{k}"' for k in key)
    match = " AND ".join(f'c."{k}" IS NOT DISTINCT FROM g."{k}"' for k in key)
    wh.execute(
        f'DELETE FROM {ALIAS}.main."{name}" AS c USING (SELECT {keys} FROM {source}'
        f" WHERE {_only_in(base, version)}) AS g WHERE {match}"
    )
    wh.execute(f'INSERT INTO {ALIAS}.main."{name}" SELECT {cols} FROM {source} WHERE {_only_in(version, base)}')


def write(
    wh: Warehouse, store: Store, version: int, views: Callable[[], dict[str, str]], keys: dict[str, tuple[str, ...]]
) -> Path:
    """Write version `version` to a new file beside the published copy and return its path.

    When the published copy holds the store's published version, the new file starts as a copy of
    that file and receives only the rows that differ (`keys` gives each table's primary key); any
    other time (no copy yet, or one left behind) every row is written. `views()` is called with the
    new file as the current catalog and returns each view model's SQL over the tables there,
    unqualified: a view then reads the tables of whatever file it is in. The published copy is
    not touched: `swap` puts the new file in its place.
    """
    target = _writing_path(wh.path)
    _remove(target)  # what a killed earlier attempt left
    base = version_in(wh.path)
    if base is not None and base == state.StateReader(wh.execute).current_version():
        shutil.copyfile(path_of(wh.path), target)
        log.info("readers' copy of version %d: from the copy of version %d and the rows that differ", version, base)
    else:
        base = None
        log.info("readers' copy of version %d: every row", version)
    catalog = wh.con.current_catalog
    # Read before attaching: with the copy attached, the first query of information_schema took 1.5 s.
    columns = {name: ", ".join(f'"{c}"' for c in store.model_columns(name)) for name in store.physical_tables()}
    literal = "'" + str(target).replace("'", "''") + "'"  # ATTACH takes no parameters
    wh.execute(f"ATTACH {literal} AS {ALIAS} (READ_WRITE)")  # said: the warehouse may be open read-only
    try:
        copied = _copied_tables(wh)
        for name, cols in columns.items():
            source = f'"{catalog}".{STORE}."{name}"'
            if base is not None and name in copied:
                _apply_difference(wh, name, cols, source, keys[name], base, version)
            else:
                _copy_table(wh, name, cols, source, version)
        # Written before the store publishes: the time it is written is the time it is published.
        state.stamp_copy(wh, ALIAS, version)
        wh.execute(f"USE {ALIAS}")
        try:
            for name, sql in views().items():  # the code may have changed them: always (re)defined
                wh.execute(f'CREATE OR REPLACE VIEW main."{name}" AS {sql}')
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
            return state.stamped_version(con)
        finally:
            con.close()
    return None
