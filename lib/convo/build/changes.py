"""The audit's copies of the rows a build may have changed (schema CHANGES), read from the evaluation.

A model's changed rows are its live rows in the partitions it recomputed: a whole partition, not
only the rows the merge wrote, so that a duplicate key next to an unchanged row is seen (a key lies
in one partition). Ingestion tables are only appended to: their rows of this version.
"""

from __future__ import annotations

from convo.build.evaluate import Evaluated, Evaluation, Kept, Recomputed, ScopedView, view_sql
from convo.engine.store import FROM, Store
from convo.engine.warehouse import CANDIDATE, CHANGES, STORE
from convo.models.registry import models

INGESTION_TABLES = ("ingested_files", "rejected_conversation_events")  # appended to, never merged


def _whole(result: Evaluated | None) -> bool:
    """Rebuilt whole (the seeds are merged whole), or no result at all: then every row may have changed."""
    return result is None or (isinstance(result, Recomputed | ScopedView) and result.partitions is None)


def stage_changes(store: Store, ev: Evaluation, version: int) -> bool:
    """Copy into CHANGES the rows of version `version` that this evaluation may have changed.

    False when every model was rebuilt whole: the audit then checks every row anyway.
    """
    wh = store.wh
    wh.execute(f"DROP SCHEMA IF EXISTS {CHANGES} CASCADE")
    if all(_whole(ev.results.get(name)) for name in models()):
        return False
    wh.execute(f"CREATE SCHEMA {CHANGES}")
    views = [name for name, m in models().items() if m.materialized == "view"]
    for name in [*store.physical_tables(), *views]:  # views last: one may read its inputs' copies
        every_row = f'SELECT * FROM {CANDIDATE}."{name}"'
        result = ev.results.get(name)
        params: list = []
        if name in INGESTION_TABLES:
            cols = ", ".join(f'"{c}"' for c in store.model_columns(name))
            rows, params = (
                f'TABLE {CHANGES}."{name}" AS SELECT {cols} FROM {STORE}."{name}" WHERE {FROM} = ?',
                [version],
            )
        elif _whole(result):
            rows = f'VIEW {CHANGES}."{name}" AS {every_row}'
        elif isinstance(result, Kept):
            rows = f'VIEW {CHANGES}."{name}" AS {every_row} WHERE false'
        elif isinstance(result, Recomputed):
            live, params = store.live_rows_after(name, result.delta, version)
            rows = f'TABLE {CHANGES}."{name}" AS {live}'
        else:
            assert isinstance(result, ScopedView) and result.partitions is not None
            m = models()[name]
            # Its inputs' changed rows are copied already when they cover its partitions: computed from them.
            source = f"SELECT * FROM ({view_sql(wh, m, CHANGES)})" if result.from_recomputed else every_row
            in_partitions = f'"{m.partition}" IN (SELECT value FROM {result.partitions.sql})'
            rows = f'TABLE {CHANGES}."{name}" AS {source} WHERE {in_partitions}'
        # Tables, not views: each check then reads the few changed rows, not the table around them.
        wh.execute(f"CREATE {rows}", params)
    return True
