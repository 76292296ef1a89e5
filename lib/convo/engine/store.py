"""Versioned storage: every published table is a view onto one version of a physical table.

Each physical table in `convo_store` carries two hidden columns: `_valid_from`, the build that
wrote the row, and `_valid_to`, the build that replaced it (NULL while current). Version V of a
table is the rows with `_valid_from <= V < coalesce(_valid_to, inf)`. So:

- a build writes version R next to the published one without readers seeing it;
- publishing and rolling back re-point the views in `main` at another version (no copies);
- a build costs what it changes: unchanged rows are shared by every version;
- a build that fails or dies leaves rows newer than the published version, which the next
  build discards before it starts.

Versions are linear: a new build discards every version after the published one (the ones a
rollback stepped back from), and retention drops rows only old versions could see. Which version
is published, rolled back, discarded or expired is recorded by `convo.engine.state`; the runner
calls both in the transaction that switches the views.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis

from convo.engine.warehouse import CANDIDATE, PUBLISHED, STORE, WORK, Warehouse

FROM, TO = "_valid_from", "_valid_to"
LOAD_TIME = "updated_at"
ROW = "_row"  # a stored row's rowid, kept in snapshots: retiring rows by it needs no scan of their keys


@dataclass(frozen=True)
class Delta:
    """What a merge changed. `everything` means the whole table was (re)written from scratch."""

    inserted: int
    retired: int
    table: str | None  # scratch table with the inserted and retired rows, for downstream scopes
    everything: bool = False
    snapshot: str | None = None  # scratch table: the live rows the merge compared with (`Store.snapshot`)
    retired_rows: str | None = None  # scratch table: the `ROW`s of the snapshot's rows it retired

    @property
    def changed(self) -> bool:
        return self.everything or self.inserted > 0 or self.retired > 0


def visible(version: int) -> str:
    """The condition for the rows of `version`, for view definitions: a view cannot take parameters,
    so the version is written into the SQL, as an integer."""
    v = int(version)
    return f"{FROM} <= {v} AND ({TO} IS NULL OR {TO} > {v})"


class Store:
    def __init__(self, warehouse: Warehouse):
        self.wh = warehouse

    # -- versions ---------------------------------------------------------------------------
    def physical_tables(self) -> list[str]:
        rows = self.wh.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY table_name", [STORE]
        )
        return [name for (name,) in rows]

    def discard_after(self, version: int) -> None:
        """Forget every row written by builds after `version` (failed, killed or rolled back)."""
        for name in self.physical_tables():
            self.wh.execute(f'DELETE FROM {STORE}."{name}" WHERE {FROM} > ?', [version])
            self.wh.execute(f'UPDATE {STORE}."{name}" SET {TO} = NULL WHERE {TO} > ?', [version])

    # -- reading ----------------------------------------------------------------------------
    def model_columns(self, name: str) -> list[str]:
        return [c for c, _ in self.wh.columns(name, STORE) if c not in (FROM, TO)]

    def live(self, name: str) -> ibis.Table:
        """The rows the build in progress sees: the newest version of every row."""
        t = self.wh.table(name, STORE)
        return t.filter(t[TO].isnull()).drop(FROM, TO)

    def never_written(self, name: str) -> bool:
        """No row of the table was ever kept: missing, or emptied by `discard_after` (a first build
        that was killed or failed). Such a table is computed whole, not by changed partitions."""
        if not self.wh.has_table(name, STORE):
            return True
        return self.wh.scalar(f'SELECT count(*) = 0 FROM (SELECT 1 FROM {STORE}."{name}" LIMIT 1)')

    def live_count(self, name: str) -> int:
        if not self.wh.has_table(name, STORE):
            return 0
        return self.wh.scalar(f'SELECT count(*) FROM {STORE}."{name}" WHERE {TO} IS NULL')

    # -- writing ----------------------------------------------------------------------------
    def _create(self, name: str, source: str) -> None:
        self.wh.execute(
            f'CREATE TABLE {STORE}."{name}" AS SELECT *, NULL::TIMESTAMP AS {LOAD_TIME},'
            f" NULL::BIGINT AS {FROM}, NULL::BIGINT AS {TO} FROM {source} LIMIT 0"
        )

    def _check_columns(self, name: str, source: str) -> None:
        stored = [(c, t) for c, t in self.wh.columns(name, STORE) if c not in (LOAD_TIME, FROM, TO)]
        built = [(r[0], r[1]) for r in self.wh.execute(f"DESCRIBE SELECT * FROM {source}")]
        if stored != built:
            raise RuntimeError(
                f"the columns of {name} changed ({stored} -> {built}); rebuild the environment's warehouse"
                " from its inputs (delete the file) to apply a schema change"
            )

    def append(self, name: str, new: str, version: int) -> int:
        """Insert rows that never change once written (ingestion records); `new` is a scratch table."""
        source = f'{WORK}."{new}"'
        if not self.wh.has_table(name, STORE):
            self._create(name, source)
        else:
            self._check_columns(name, source)
        self.wh.execute(f'INSERT INTO {STORE}."{name}" SELECT *, now()::TIMESTAMP, ?, NULL FROM {source}', [version])
        return self.wh.scalar(f"SELECT count(*) FROM {source}")

    def insert(self, name: str, query: str, version: int) -> Delta:
        """Fill a table that has no live rows straight from a query: nothing to compare with."""
        if not self.wh.has_table(name, STORE):
            self._create(name, f"({query})")
        else:
            self._check_columns(name, f"({query})")
        before = self.wh.scalar(f'SELECT count(*) FROM {STORE}."{name}"')
        self.wh.execute(f'INSERT INTO {STORE}."{name}" SELECT *, now()::TIMESTAMP, ?, NULL FROM ({query})', [version])
        inserted = self.wh.scalar(f'SELECT count(*) FROM {STORE}."{name}"') - before
        return Delta(inserted, 0, None, everything=inserted > 0)

    def snapshot(self, name: str, into: str, where: str | None) -> None:
        """Copy the live rows of `name` (restricted by `where`) to scratch table `into`, with their
        rowid as `ROW`. The rowids stay valid for the rest of the build: only the build writes the
        table while it holds the environment's lock, and a rowid moves only when rows are deleted."""
        cols = ", ".join(f'"{c}"' for c in self.model_columns(name))
        restrict = f" AND ({where})" if where else ""
        self.wh.execute(
            f'CREATE OR REPLACE TEMP TABLE {WORK}."{into}" AS'
            f' SELECT rowid AS {ROW}, {cols} FROM {STORE}."{name}" WHERE {TO} IS NULL{restrict}'
        )

    def merge(
        self, name: str, new: str, *, key: tuple[str, ...], old_filter: str | None, version: int, old: str | None = None
    ) -> Delta:
        """Make the live rows of `name` (restricted by `old_filter`) equal to the rows of `new`.

        Only rows that differ are touched: changed and vanished rows are retired, new and changed
        rows inserted. `new` names the scratch table holding the recomputed rows; `old`, if given,
        the `snapshot` of the live rows under `old_filter` taken before them. Exact for any rows
        in `new` (repeated rows and keys included) given one live row per key under `old_filter`,
        which every stored version has: a version that repeats a primary key fails its audit.
        """
        src = f'{WORK}."{new}"'
        if old_filter is None and self.live_count(name) == 0:
            return self.insert(name, f"SELECT * FROM {src}", version)
        self._check_columns(name, src)

        cols = ", ".join(f'"{c}"' for c in self.model_columns(name) if c != LOAD_TIME)
        old_name = old or f"{new}_old"
        if old is None:
            self.snapshot(name, old_name, old_filter)
        old = f'{WORK}."{old_name}"'
        diff, retired_rows = (f'{WORK}."{new}_{suffix}"' for suffix in ("diff", "retired"))
        # One aggregation counts each distinct row in new minus in old: rows to insert (> 0, that
        # many copies) and to retire (< 0). The same as `new EXCEPT ALL old` and `old EXCEPT ALL new`.
        # Its rows are also the merge's delta: downstream models read their partitions from it.
        self.wh.execute(
            f"CREATE OR REPLACE TEMP TABLE {diff} AS SELECT {cols}, sum(_side)::BIGINT AS _change FROM"
            f" (SELECT {cols}, 1 AS _side FROM {src} UNION ALL SELECT {cols}, -1 AS _side FROM {old})"
            " GROUP BY ALL HAVING sum(_side) <> 0"
        )
        # Every live row with a changed or vanished key is retired (a key lies in one partition, so in `old`).
        match = " AND ".join(f'o."{k}" IS NOT DISTINCT FROM r."{k}"' for k in key)
        self.wh.execute(
            f"CREATE OR REPLACE TEMP TABLE {retired_rows} AS SELECT o.{ROW} FROM {old} AS o"
            f" SEMI JOIN (SELECT * FROM {diff} WHERE _change < 0) AS r ON {match}"
        )
        self.wh.execute(
            f'UPDATE {STORE}."{name}" SET {TO} = ? WHERE rowid IN (SELECT {ROW} FROM {retired_rows})', [version]
        )
        self.wh.execute(
            f'INSERT INTO {STORE}."{name}" SELECT {cols}, now()::TIMESTAMP, ?, NULL FROM'
            f" (SELECT *, unnest(range(_change)) FROM {diff} WHERE _change > 0)",
            [version],
        )
        inserted, retired = self.wh.execute(
            "SELECT coalesce(sum(_change) FILTER (_change > 0), 0),"
            f" coalesce(-sum(_change) FILTER (_change < 0), 0) FROM {diff}"
        )[0]
        return Delta(inserted, retired, f"{new}_diff", snapshot=old_name, retired_rows=f"{new}_retired")

    def live_rows_after(self, name: str, delta: Delta, version: int) -> tuple[str, list]:
        """SQL and its parameters for the live rows of `name` that version `version` may have changed: those of the
        partitions `delta`'s merge recomputed (the snapshot's rows it kept, and the rows it inserted),
        and any other row that version wrote. The rows a version wrote lie at the table's end, so
        zone maps find them without a scan of the whole table."""
        cols = ", ".join(f'"{c}"' for c in self.model_columns(name))
        return (
            f'SELECT {cols} FROM {WORK}."{delta.snapshot}"'
            f' WHERE {ROW} NOT IN (SELECT {ROW} FROM {WORK}."{delta.retired_rows}")'
            f' UNION ALL SELECT {cols} FROM {STORE}."{name}" WHERE {FROM} = ? AND {TO} IS NULL'
        ), [version]

    # -- views, publishing, rollback, retention ----------------------------------------------
    def point_views(self, schema: str, version: int, names: list[str]) -> None:
        for name in names:
            cols = ", ".join(f'"{c}"' for c in self.model_columns(name))
            self.wh.execute(
                f'CREATE OR REPLACE VIEW {schema}."{name}" AS'
                f' SELECT {cols} FROM {STORE}."{name}" WHERE {visible(version)}'
            )

    def stage_candidate(self, version: int) -> None:
        """Views of the unpublished version, for audits."""
        self.point_views(CANDIDATE, version, self.physical_tables())

    def publish(self, version: int) -> None:
        """Point the published views at `version`, for a publish or a rollback (call inside a transaction)."""
        self.point_views(PUBLISHED, version, self.physical_tables())

    def expire(self, oldest_kept: int | None) -> None:
        """Drop the rows no version from `oldest_kept` on can see (None: nothing expired, nothing to drop)."""
        if oldest_kept is None:
            return
        for name in self.physical_tables():
            self.wh.execute(f'DELETE FROM {STORE}."{name}" WHERE {TO} IS NOT NULL AND {TO} <= ?', [oldest_kept])
