"""Which tables each report notebook reads, recorded while it runs: the lineage's last step.

Every query of the reports goes through `reporting.query` (SQL) or `reporting.compute` (an Ibis
expression); both pass the tables they read to `record`. `convo run` names a file per notebook
in `$CONVO_READS_FILE` while it executes that notebook (its kernel inherits the variable), and
`record` appends each table there, one name a line. The site reads those files back from the
latest run (`load`), so an edge from a table to a notebook exists exactly when the notebook
queried it, whichever module the query was written in. Outside `convo run` (JupyterLab, nbval)
the variable is unset and nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import duckdb
import ibis.expr.operations as ops
import ibis.expr.types as ir

VARIABLE = "CONVO_READS_FILE"
SUFFIX = ".reads"  # beside the executed notebook: NN_name.reads


def of_sql(con: duckdb.DuckDBPyConnection, sql: str) -> set[str]:
    """The tables and views a SQL statement reads, as DuckDB's parser sees them (not a text search).
    Unqualified names: `load` keeps only the warehouse's documented tables."""
    return set(con.get_table_names(_without_parameters(sql), qualified=False))


def _without_parameters(sql: str) -> str:
    """`sql` with each `?` placeholder read as NULL: DuckDB cannot list the tables of a statement
    that has parameters. The tokenizer tells a placeholder from a `?` inside a string."""
    placeholders = [
        start for start, kind in duckdb.tokenize(sql) if kind == duckdb.token_type.operator and sql[start] == "?"
    ]
    for start in reversed(placeholders):
        sql = f"{sql[:start]}NULL{sql[start + 1 :]}"
    return sql


def of_expression(expression: ir.Table) -> set[str]:
    """The database tables an Ibis expression reads."""
    return {t.name for t in expression.op().find(ops.PhysicalTable)}


def record(tables: Iterable[str]) -> None:
    """Append the tables to the current notebook's reads file, when `convo run` named one."""
    target = os.environ.get(VARIABLE)
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.writelines(f"{t}\n" for t in sorted(tables))


def load(folder: Path, known: Iterable[str]) -> dict[str, list[str]]:
    """Notebook source name (`NN_name.py`) -> the known tables it read, from a run's reads files."""
    known = set(known)
    return {
        f"{path.stem}.py": sorted({line for line in path.read_text(encoding="utf-8").splitlines() if line in known})
        for path in sorted(folder.glob(f"*{SUFFIX}"))
    }
