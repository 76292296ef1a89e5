"""Read every published table of a warehouse, without the columns set at load time."""

import duckdb

from convo.models.registry import table_docs


def snapshot(warehouse, exclude: dict[str, set[str]] | None = None) -> dict[str, list[tuple]]:
    """{table: sorted rows}, comparable between two warehouses built from the same events."""
    exclude = exclude or {}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = {}
        for doc in table_docs().values():
            cols = [c.name for c in doc.columns if not c.load_time and c.name not in exclude.get(doc.name, set())]
            quoted = ", ".join(f'"{c}"' for c in cols)
            rows = con.execute(f'SELECT {quoted} FROM main."{doc.name}"').fetchall()
            tables[doc.name] = sorted(rows, key=repr)
        return tables
    finally:
        con.close()
