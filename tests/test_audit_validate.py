"""How the audit drives Great Expectations: a build's audit keeps its results in memory and asks
each check for only what its record shows; `convo check` stores them for Data Docs. Both give the
same check records, and the records come in the order GX reports a whole suite.

Real GX on small DuckDB files made here; the answers are worked out by hand.
"""

from __future__ import annotations

import collections
from pathlib import Path

import duckdb
import pytest
from great_expectations.data_context.store.store import Store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convo.audit import checks, suites
from convo.audit import validate as gx_audit
from convo.audit.validate import in_gx_order, validate

ROWS = 30  # more offending values than GX's sample of 20, so the sample's LIMIT matters


def _warehouse(folder: Path) -> Path:
    """Table `t`: k 1..30, n = -k (all below 0), status 's<k>' (none known), a = k and b = k + 1
    for odd k (a < b: 15 offending pairs), x NULL for k <= 7; k = 1 and 2 repeated once more.
    Table `p` holds the parents 1..10 of t.k."""
    path = folder / "wh.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        """CREATE TABLE t AS SELECT k, -k AS n, 's' || k AS status, k AS a,
               CASE WHEN k % 2 = 1 THEN k + 1 ELSE k END AS b, CASE WHEN k > 7 THEN k END AS x
           FROM range(1, ? + 1) AS r(k) ORDER BY k""",
        [ROWS],
    )
    con.execute("INSERT INTO t SELECT * FROM t WHERE k <= 2 ORDER BY k")
    con.execute("CREATE TABLE p AS SELECT k FROM range(1, 11) AS r(k)")
    con.close()
    return path


def _suite() -> dict:
    return {
        "name": "t",
        "expectations": [
            suites._rows(
                "k is unique",
                suites.ERROR,
                "test",
                "SELECT k, count(*) AS n_rows FROM {batch} GROUP BY k HAVING count(*) > 1 ORDER BY k",
            ),
            suites.at_least("n", 0, "test"),
            suites.one_of("status", ("open", "closed"), "test"),
            suites._rows(
                "k is found in p",
                suites.ERROR,
                "test",
                "SELECT DISTINCT t.k FROM {batch} AS t ANTI JOIN {schema}.p ON p.k = t.k ORDER BY 1",
            ),
            suites.not_null("x", "test"),
            suites._expectation(
                "expect_column_pair_values_a_to_be_greater_than_b",
                "a >= b",
                suites.ERROR,
                "test",
                column_A="a",
                column_B="b",
                or_equal=True,
            ),
            suites.not_null("n", "test"),
        ],
    }


def _records(results: dict[str, list[dict]]) -> list[tuple]:
    return [
        (r.table_name, r.check_name, r.severity, r.success, r.unexpected_count, r.sample, r.reason)
        for table, table_results in results.items()
        for r in (checks.record(table, result, None) for result in table_results)
    ]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    return _warehouse(tmp_path_factory.mktemp("validate"))


def test_a_builds_audit_and_convo_checks_stored_audit_give_the_same_records_worked_out_by_hand(warehouse, tmp_path):
    in_memory = _records(validate(warehouse, "main", [_suite()], parameters={}, run_name="build"))
    stored = _records(
        validate(warehouse, "main", [_suite()], parameters={}, run_name="check", docs_dir=tmp_path / "docs")
    )
    assert in_memory == stored
    assert (tmp_path / "docs" / "index.html").is_file()
    why = "test"
    # GX groups a suite's results by column, in the order each column first appears; the checks
    # without a column (the two unexpected-rows checks and the column pair) are the first group.
    assert in_memory == [
        ("t", "k is unique", "error", False, 2, "k=1 n_rows=2; k=2 n_rows=2", why),
        ("t", "k is found in p", "error", False, 20, "k=11; k=12; k=13; k=14; k=15", why),
        ("t", "a >= b", "error", False, 16, "(1, 2), (3, 4), (5, 6), (7, 8), (9, 10)", why),
        # all 32 rows offend; the sample is the first five of GX's first 20 offending values
        ("t", "n >= 0", "error", False, 32, "-1, -2, -3, -4, -5", why),
        ("t", "n is not null", "error", True, 0, None, why),
        ("t", "status is open or closed", "error", False, 32, "s1, s2, s3, s4, s5", why),
        ("t", "x is not null", "error", False, 9, "None", why),
    ]


def test_a_builds_audit_stores_nothing_in_gx_and_registers_its_data_source_once(warehouse, monkeypatch):
    """Each asset added to a source that a context holds re-saves the context's whole configuration,
    and each validation definition stores its suite, itself and its results: a build needs none."""
    saved = collections.Counter()
    real_set = Store.set

    def counting_set(store, *args, **kwargs):
        saved[type(store).__name__] += 1
        return real_set(store, *args, **kwargs)

    monkeypatch.setattr(Store, "set", counting_set)
    two_tables = [_suite(), {"name": "p", "expectations": [suites.not_null("k", "test")]}]
    results = validate(warehouse, "main", two_tables, parameters={}, run_name="build", rows_schema="main")
    assert (len(results["t"]), len(results["p"])) == (7, 1)
    assert saved == {"DataContextStore": 1}  # the data source with all its assets, added once


def _expectation(kind: str, column: str, i: int) -> dict:
    name = f"check {i}"
    if kind == "rows":
        return suites._rows(name, suites.WARN, "test", f"SELECT {column} FROM {{batch}} WHERE {column} < 0")
    if kind == "pair":
        return suites._expectation(
            "expect_column_pair_values_a_to_be_greater_than_b", name, suites.WARN, "test", column_A="a", column_B=column
        )
    return {**suites.not_null(column, "test"), "description": name}


def _whole_suite_in_one_run(warehouse: Path, suite: dict) -> list[dict]:
    """GX's results for the whole suite validated at once, with the richest result format."""
    context = gx_audit._context(None)
    query = {"t": 'SELECT * FROM main."t"'}
    with gx_audit._sql_source(context, warehouse, query, threads=1, memory_limit="1GB") as source:
        batch = source.get_asset("t").get_batch_definition(gx_audit.BATCH).get_batch()
        result = batch.validate(gx_audit.gx_suite(suite, "main"), result_format=gx_audit.RESULT_FORMAT)
    return [r.to_json_dict() for r in result.results]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.sampled_from(["rows", "pair", "column"]), st.sampled_from(["k", "n", "x", "b"])),
        min_size=1,
        max_size=8,
    )
)
def test_the_records_come_in_the_order_gx_reports_the_whole_suite(warehouse, checks_drawn):
    """The build validates a suite's unexpected-rows checks apart from its column checks (they need
    different result formats), then orders them as GX orders a whole suite validated at once (as
    `convo check` runs it), with the same counts and samples."""
    suite = {"name": "t", "expectations": [_expectation(kind, col, i) for i, (kind, col) in enumerate(checks_drawn)]}
    in_memory = validate(warehouse, "main", [suite], parameters={}, run_name="build")["t"]
    whole_suite = _whole_suite_in_one_run(warehouse, suite)
    names = [r["expectation_config"]["description"] for r in in_memory]
    assert names == [r["expectation_config"]["description"] for r in whole_suite]
    assert names == [e["description"] for e in in_gx_order(suite["expectations"])]
    assert _records({"t": in_memory}) == _records({"t": whole_suite})


def test_in_gx_order_groups_by_column_in_order_of_first_appearance():
    drawn = [("rows", "k"), ("column", "n"), ("pair", "b"), ("column", "x"), ("column", "n"), ("rows", "n")]
    suite = [_expectation(kind, col, i) for i, (kind, col) in enumerate(drawn)]
    # no column: checks 0, 2, 5; then n: 1, 4; then x: 3
    assert [e["description"] for e in in_gx_order(suite)] == [f"check {i}" for i in (0, 2, 5, 1, 4, 3)]
