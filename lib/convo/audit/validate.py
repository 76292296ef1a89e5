"""Run GX suites on the tables of one schema of a warehouse file, in SQL inside DuckDB.

Importing this module imports Great Expectations (several seconds), so only code that validates
imports it, lazily. One ephemeral GX context serves an audit: one SQL data source on the file
(read-only) with a query asset per suite part, registered with the context once. A build's audit
validates each part's batch and keeps the results only in memory; `convo check` runs each part as
a validation definition, whose results the context stores for its Data Docs.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

# GX logs its internals at INFO (while importing, too), and our CLI shows INFO on stderr. One GX
# module sets its own logger to INFO on import, so it is quietened again afterwards.
logging.getLogger("great_expectations").setLevel(logging.WARNING)

import great_expectations as gx  # noqa: E402
from great_expectations.core.run_identifier import RunIdentifier  # noqa: E402
from great_expectations.datasource.fluent import SQLDatasource  # noqa: E402

from convo.audit.data_docs import make_offline  # noqa: E402
from convo.audit.gx_configurations import build_configurations_once, built_once  # noqa: E402
from convo.audit.gx_duckdb import keep_duckdb_connections  # noqa: E402
from convo.audit.suites import SCHEMA, WHOLE_TABLE  # noqa: E402

logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
keep_duckdb_connections()
build_configurations_once()

log = logging.getLogger(__name__)
DOCS_SITE = "local"
SOURCE = "warehouse"
BATCH = "whole table"
ROWS_CHECK = "unexpected_rows_expectation"
# COMPLETE returns the offending rows of SQL checks (GX caps every list at 200 values).
RESULT_FORMAT = {"result_format": "COMPLETE", "partial_unexpected_count": 20}
# A build asks each check for what its record shows, and no more. An unexpected-rows check returns
# its rows only with COMPLETE. A column check's record takes its exact count and a sample from the
# first 20 offending values, which BASIC returns as COMPLETE does (GX reads them with a LIMIT 20,
# in the same order, instead of reading up to 200 and counting them in Python).
VALUES_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 20}


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
def _sql_source(context, warehouse: Path, queries: dict[str, str], *, threads: int, memory_limit: str) -> Iterator:
    """A read-only GX data source on the file with a query asset per name in `queries`, added to
    the context once it holds them all (the context persists its whole configuration on every
    asset added to a source it holds, which costs more than validating the sample). Its connection
    is closed on exit, so the runner can open the file again (DuckDB refuses a second connection
    with another config). It spills to `<file>.audit.tmp/`, not where the build's connection does
    (`<file>.tmp/`): the build may hold the file open meanwhile, and DuckDB names its spill files
    the same in every process."""
    path = str(warehouse.resolve())
    config = {"threads": threads, "memory_limit": memory_limit, "temp_directory": f"{path}.audit.tmp"}
    # The file is named in connect_args: a URL would read `?` in its name as the start of a
    # query. The URL names it too, quoted, for what GX shows.
    source = SQLDatasource(
        name=SOURCE,
        connection_string=f"duckdb:///{urllib.parse.quote(path)}",
        kwargs={"connect_args": {"database": path, "read_only": True, "config": config}},
    )
    for name, query in queries.items():
        # A query asset, not a table asset: GX then reads the columns from the query instead of
        # reflecting the table, which costs more than validating it on small tables.
        source.add_query_asset(name, query=query).add_batch_definition_whole_table(BATCH)
    context.add_datasource(datasource=source)
    source = context.data_sources.get(SOURCE)
    try:
        yield source
    finally:
        source.get_execution_engine().close()
        source.get_engine().dispose()


def _validate_in_memory(batch_definition, data: dict, schema: str, parameters: dict) -> list[dict]:
    """The results of one suite part on its batch, stored nowhere and in the order GX reports a
    whole suite's: the unexpected-rows checks with their rows, the others with a sample of values."""
    batch = batch_definition.get_batch()
    by_name = {}
    for result_format, wanted in ((RESULT_FORMAT, True), (VALUES_RESULT_FORMAT, False)):
        expectations = [e for e in data["expectations"] if (e["type"] == ROWS_CHECK) == wanted]
        if expectations:
            suite = gx_suite({**data, "expectations": expectations}, schema)
            with built_once():
                result = batch.validate(suite, result_format=result_format, expectation_parameters=parameters)
            by_name.update((r.expectation_config.description, r.to_json_dict()) for r in result.results)
    return [by_name[e["description"]] for e in in_gx_order(data["expectations"])]


def in_gx_order(expectations: list[dict]) -> list[dict]:
    """A suite's expectations in the order GX validates and reports them: grouped by column, the
    groups in the order their column first appears (those without a column form one group)."""
    groups: dict[str | None, list[dict]] = {}
    for e in expectations:
        column = e["kwargs"].get("column")
        groups.setdefault(column if isinstance(column, str) else None, []).append(e)
    return [e for group in groups.values() for e in group]


def _validate_and_store(context, batch_definition, data: dict, schema: str, parameters: dict, run_id) -> list[dict]:
    """The results of one suite part, run as a validation definition that the context stores with
    its suite and results, for Data Docs."""
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(
            name=data["name"], data=batch_definition, suite=context.suites.add(gx_suite(data, schema))
        )
    )
    with built_once():
        result = definition.run(expectation_parameters=parameters, result_format=RESULT_FORMAT, run_id=run_id)
    return [r.to_json_dict() for r in result.results]


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
) -> dict[str, list[dict]]:
    """Validate each suite against the table of the same name in `schema`, in one GX context:
    each suite part a query asset whose batch GX validates; with `docs_dir`, as a validation
    definition whose results the context stores for Data Docs.

    With `rows_schema`, the row-level checks read the table's rows in that schema instead (the
    rows an incremental build changed); cross-table SQL always reads `schema`.

    Returns the GX ExpectationValidationResults, as JSON, by table. Data Docs for this run are
    written to `docs_dir` (replacing the previous ones) when it is given.
    """
    t0 = time.perf_counter()
    context = _context(docs_dir)
    run_id = RunIdentifier(run_name=run_name)
    parts = [
        (table["name"], data, part_schema)
        for table in suites
        for data, part_schema in _batches(table, schema, rows_schema)
    ]
    queries = {data["name"]: f'SELECT * FROM {part_schema}."{table}"' for table, data, part_schema in parts}
    by_table: dict[str, list[dict]] = {}
    with _sql_source(context, warehouse, queries, threads=threads, memory_limit=memory_limit) as source:
        for table, data, _ in parts:
            batch_definition = source.get_asset(data["name"]).get_batch_definition(BATCH)
            if docs_dir is None:
                results = _validate_in_memory(batch_definition, data, schema, parameters)
            else:
                results = _validate_and_store(context, batch_definition, data, schema, parameters, run_id)
            by_table.setdefault(table, []).extend(results)
    log.info(
        "validated %d expectations on %s in %.1f s",
        sum(len(s["expectations"]) for s in suites),
        schema,
        time.perf_counter() - t0,
    )
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
