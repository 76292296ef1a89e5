"""Run GX suites on the tables of one schema of a warehouse file, in SQL inside DuckDB.

Importing this module imports Great Expectations (several seconds), so only code that validates
imports it, lazily. One ephemeral GX context per process serves an audit: one SQL data source
on the file (read-only), one query asset and validation definition per suite part, each run
as soon as it is defined.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

# GX logs its internals at INFO (while importing, too), and our CLI shows INFO on stderr. One GX
# module sets its own logger to INFO on import, so it is quietened again afterwards.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

import great_expectations as gx  # noqa: E402
from great_expectations.core.run_identifier import RunIdentifier  # noqa: E402

from convo.audit import child  # noqa: E402
from convo.audit.data_docs import make_offline  # noqa: E402
from convo.audit.gx_duckdb import keep_duckdb_connections  # noqa: E402
from convo.audit.suites import SCHEMA, WHOLE_TABLE  # noqa: E402
from convo.files import audit_spill_prefix  # noqa: E402

logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
keep_duckdb_connections()

log = logging.getLogger(__name__)
DOCS_SITE = "local"
# COMPLETE returns the offending rows of SQL checks (GX caps every list at 200 values).
RESULT_FORMAT = {"result_format": "COMPLETE", "partial_unexpected_count": 20}


def gx_suite(data: dict, schema: str) -> gx.ExpectationSuite:
    """A suite dict (as stored in expectations/*.json) bound to `schema`, checked to load whole."""
    expectations = []
    for e in data["expectations"]:
        kwargs = dict(e["kwargs"])
        if isinstance(kwargs.get("unexpected_rows_query"), str):
            kwargs["unexpected_rows_query"] = kwargs["unexpected_rows_query"].replace(SCHEMA, schema)
        expectations.append({**e, "kwargs": kwargs})
    suite = gx.ExpectationSuite(name=data["name"], expectations=expectations, notes=data.get("notes"))
    # GX drops an expectation whose type it does not know with only a log line.
    if len(suite.expectations) != len(data["expectations"]):
        raise RuntimeError(
            f"suite {data['name']}: GX loaded {len(suite.expectations)} of {len(data['expectations'])} expectations"
        )
    return suite


def _context(docs_dir: Path | None):
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}  # tqdm would write to stderr
    if docs_dir is not None:
        context.add_data_docs_site(
            site_name=DOCS_SITE,
            site_config={
                "class_name": "SiteBuilder",
                # An ephemeral context has no root directory, so this path must be absolute.
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir.resolve()),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context


def _batches(data: dict, schema: str, rows_schema: str | None) -> list[tuple[dict, str]]:
    """The parts of a suite and the schema each reads: with `rows_schema`, row-level checks read
    the rows there, while table-level ones (volume, freshness) still read the whole table."""
    if rows_schema is None:
        return [(data, schema)]
    whole = [e for e in data["expectations"] if e["type"] in WHOLE_TABLE]
    rows = [e for e in data["expectations"] if e["type"] not in WHOLE_TABLE]
    parts = [({**data, "expectations": rows}, rows_schema)] if rows else []
    if whole:
        parts.append(({**data, "name": f"{data['name']} (whole table)", "expectations": whole}, schema))
    return parts


@contextlib.contextmanager
def _sql_source(context, warehouse: Path, *, threads: int, memory_limit: str) -> Iterator:
    """A read-only GX data source on the file; its connection is closed on exit, so the
    runner can open the file again (DuckDB refuses a second connection with another config).

    It spills to a directory of its own, removed on exit: by default DuckDB spills next to the
    file, under names that the audit's other processes would use too."""
    with tempfile.TemporaryDirectory(prefix=audit_spill_prefix(warehouse), dir=warehouse.parent) as spill:
        config = {"threads": threads, "memory_limit": memory_limit, "temp_directory": spill}
        # The file is named in connect_args: a URL would read `?` in its name as the start of a
        # query. The URL names it too, quoted, for what GX shows.
        path = str(warehouse.resolve())
        source = context.data_sources.add_sql(
            "warehouse",
            connection_string=f"duckdb:///{urllib.parse.quote(path)}",
            kwargs={"connect_args": {"database": path, "read_only": True, "config": config}},
        )
        try:
            yield source
        finally:
            source.get_execution_engine().close()
            source.get_engine().dispose()


def _share(memory_limit: str, processes: int) -> str:
    """Each process's share of a DuckDB memory limit ("2GB" by 2 -> "1GB"), so that the audit's
    processes together keep to the environment's limit. A limit in another form is kept whole."""
    amount = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]i?B)\s*", memory_limit, re.IGNORECASE)
    if processes == 1 or amount is None:
        return memory_limit
    return f"{float(amount[1]) / processes:g}{amount[2]}"


def validate(
    warehouse: Path,
    schema: str,
    suites: list[dict],
    *,
    parameters: dict,
    run_name: str,
    rows_schema: str | None = None,
    docs_dir: Path | None = None,
    threads: int = 2,
    memory_limit: str = "4GB",
    processes: int = 1,
) -> dict[str, list[dict]]:
    """Validate each suite against the table of the same name in `schema`.

    With `rows_schema`, the row-level checks read the table's rows in that schema instead (the
    rows an incremental build changed); cross-table SQL always reads `schema`.

    Returns the GX ExpectationValidationResults, as JSON, by table. Data Docs for this run are
    written to `docs_dir` (replacing the previous ones) when it is given.

    With `processes` > 1 the suites are shared out between that many processes, forked here:
    GX spends most of an audit in Python, so one process keeps about one core busy. They share
    `memory_limit`; each may use `threads` (while one runs Python, another's SQL can). Only a
    process that can be forked safely asks for that (the build's audit process), and only
    without Data Docs, which are rendered from one context's results.
    """
    parts = sorted(
        (
            (part, batch_schema, table["name"])
            for table in suites
            for part, batch_schema in _batches(table, schema, rows_schema)
        ),
        key=lambda p: -_cost(p[0]),
    )
    processes = 1 if docs_dir is not None else max(1, min(processes, len(parts)))
    t0 = time.perf_counter()
    with _Turns(len(parts)) as turns:
        share = functools.partial(
            _validate_parts,
            parts,
            turns,
            warehouse=warehouse,
            schema=schema,
            parameters=parameters,
            run_name=run_name,
            docs_dir=docs_dir,
            threads=threads,
            memory_limit=_share(memory_limit, processes),
        )
        with child.forked([share] * (processes - 1), "convo-audit") as others:
            results = share()
            for other in others:
                for table, table_results in other.result().items():
                    results.setdefault(table, []).extend(table_results)
    log.info(
        "validated %d expectations on %s in %.1f s%s",
        sum(len(s["expectations"]) for s in suites),
        schema,
        time.perf_counter() - t0,
        f" by {processes} processes" if processes > 1 else "",
    )
    return results


def _cost(part: dict) -> int:
    """A part's rough cost, to validate the costliest first: its expectations, and again its SQL
    checks, which read whole tables of the version."""
    return len(part["expectations"]) + sum(e["type"] == "unexpected_rows_expectation" for e in part["expectations"])


class _Turns:
    """Hands out the numbers 0..n-1, in order, to whichever process asks next: a pipe holding
    one byte per number, which forked processes share, each read taking the next byte."""

    def __init__(self, n: int):
        if n > 256:
            raise ValueError(f"{n} suite parts; one byte numbers at most 256")
        self._read, write = os.pipe()
        os.write(write, bytes(range(n)))
        os.close(write)

    def __iter__(self) -> Iterator[int]:
        while number := os.read(self._read, 1):
            yield number[0]

    def __enter__(self) -> _Turns:
        return self

    def __exit__(self, *exc) -> None:
        os.close(self._read)


def _validate_parts(
    parts: list[tuple[dict, str, str]],
    turns: _Turns,
    *,
    warehouse: Path,
    schema: str,
    parameters: dict,
    run_name: str,
    docs_dir: Path | None,
    threads: int,
    memory_limit: str,
) -> dict[str, list[dict]]:
    """Validate the suite parts (suite, schema its batch reads, table) whose turn this process
    takes, in one GX context: each a query asset, suite and validation definition."""
    context = _context(docs_dir)
    run_id = RunIdentifier(run_name=run_name)
    by_table: dict[str, list[dict]] = {}
    with _sql_source(context, warehouse, threads=threads, memory_limit=memory_limit) as source:
        for number in turns:
            data, batch_schema, table = parts[number]
            # A query asset, not a table asset: GX then reads the columns from the query instead
            # of reflecting the table, which costs more than validating it on small tables.
            batch = source.add_query_asset(data["name"], query=f'SELECT * FROM {batch_schema}."{table}"')
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(
                    name=data["name"],
                    data=batch.add_batch_definition_whole_table("whole table"),
                    suite=context.suites.add(gx_suite(data, schema)),
                )
            )
            result = definition.run(expectation_parameters=parameters, result_format=RESULT_FORMAT, run_id=run_id)
            by_table.setdefault(table, []).extend(r.to_json_dict() for r in result.results)
    if docs_dir is not None:
        # The in-memory stores hold only this run, so the site would list only it; remove the
        # pages of earlier runs instead of leaving them unlinked.
        t0 = time.perf_counter()
        if docs_dir.exists():
            shutil.rmtree(docs_dir)
        context.build_data_docs(site_names=[DOCS_SITE])
        pages = make_offline(docs_dir)  # GX's pages load scripts and styles from CDNs
        log.info(
            "data docs written to %s (%d pages, nothing remote) in %.1f s", docs_dir, pages, time.perf_counter() - t0
        )
    return by_table
