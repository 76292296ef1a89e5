"""Audits: the checks a build must pass before it is published.

Each check has a severity: a failed `error` check blocks publishing, a failed `warn` check is
recorded and reported but publishes. Checks read the unpublished version through the views in
the `convo_candidate` schema, in SQL, inside DuckDB.
"""

from __future__ import annotations

from pathlib import Path

from convo.models.registry import table_docs
from convo.runs import CheckRecord
from convo.warehouse import Warehouse

ERROR, WARN = "error", "warn"


def _sample(wh: Warehouse, sql: str) -> str | None:
    rows = wh.execute(sql + " LIMIT 5")
    return ", ".join(str(r[0] if len(r) == 1 else r) for r in rows) or None


def key_checks(wh: Warehouse, schema: str) -> list[CheckRecord]:
    """Primary keys unique and not null, foreign keys found in their dimension: from the model docs."""
    records = []
    for doc in table_docs().values():
        table = f'{schema}."{doc.name}"'
        key = ", ".join(f'"{k}"' for k in doc.primary_key)
        null_key = " OR ".join(f'"{k}" IS NULL' for k in doc.primary_key)
        dup_sql = f"SELECT {key} FROM {table} GROUP BY ALL HAVING count(*) > 1"
        dups = wh.scalar(f"SELECT count(*) FROM ({dup_sql})")
        records.append(
            CheckRecord(doc.name, f"primary key ({key}) is unique", ERROR, dups == 0, dups,
                        _sample(wh, dup_sql) if dups else None)
        )
        nulls = wh.scalar(f"SELECT count(*) FROM {table} WHERE {null_key}")
        records.append(CheckRecord(doc.name, f"primary key ({key}) is not null", ERROR, nulls == 0, nulls))
        for column in doc.foreign_keys:
            parent, parent_col = column.references.split(".")
            orphan_sql = (
                f'SELECT DISTINCT c."{column.name}" FROM {table} AS c'
                f' ANTI JOIN {schema}."{parent}" AS p ON c."{column.name}" = p."{parent_col}"'
                f' WHERE c."{column.name}" IS NOT NULL'
            )
            orphans = wh.scalar(f"SELECT count(*) FROM ({orphan_sql})")
            records.append(
                CheckRecord(doc.name, f"{column.name} is found in {column.references}", ERROR, orphans == 0,
                            orphans, _sample(wh, orphan_sql) if orphans else None)
            )
    return records


def run(warehouse: Path, schema: str) -> list[CheckRecord]:
    """Every audit on the tables in `schema` (the candidate or the published views)."""
    wh = Warehouse(warehouse, read_only=True)
    try:
        return key_checks(wh, schema)
    finally:
        wh.close()
