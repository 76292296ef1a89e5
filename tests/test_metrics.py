"""The declared metrics: each worked by hand on a small case, and used only through its expression."""

from __future__ import annotations

import ast
import datetime as dt
import importlib
import inspect
import re
from pathlib import Path

import ibis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from convo.models import metrics
from convo.models.registry import models, table_docs

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture(scope="module")
def con():
    con = ibis.duckdb.connect()
    yield con
    con.disconnect()


def d(day: int) -> int:
    return 20240100 + day


# (conversation, tag) rows. Tag a: 1 closed 2 h, 2 closed 4 h and reopened once, 3 reopened and
# still open, 4 closed 10 h with no agent reply. Conversation 2 also carries tag b.
TAGGED = {
    "conversation_id": [1, 2, 3, 4, 2],
    "tag": ["a", "a", "a", "a", "b"],
    "closed_date_key": [d(2), d(3), None, d(9), d(3)],
    "hours_to_resolve": [2.0, 4.0, None, 10.0, 4.0],
    "first_response_minutes": [10.0, 20.0, 30.0, None, 20.0],
    "reopen_count": [0, 1, 1, 0, 1],
}


def per_tag(con, measure) -> dict[str, object]:
    t = ibis.memtable(TAGGED)
    rows = con.to_pyarrow(t.group_by("tag").aggregate(value=measure(t)).order_by("tag")).to_pylist()
    return {r["tag"]: r["value"] for r in rows}


def test_conversations_opened_and_closed(con):
    assert per_tag(con, metrics.conversations_opened) == {"a": 4, "b": 1}
    assert per_tag(con, metrics.conversations_closed) == {"a": 3, "b": 1}  # 3 is not closed
    everyone = ibis.memtable(TAGGED)  # conversation 2 has two rows but counts once
    assert con.execute(metrics.conversations_opened(everyone)) == 4
    assert con.execute(metrics.conversations_closed(everyone)) == 3


def test_hours_to_resolve_over_closed_conversations(con):
    # a: closed ones 2, 4, 10 h. Median 4; p90 at position 0.9 * 2 = 1.8: 4 + 0.8 * (10 - 4) = 8.8
    assert per_tag(con, metrics.median_hours_to_resolve) == {"a": 4.0, "b": 4.0}
    assert per_tag(con, metrics.p90_hours_to_resolve) == pytest.approx({"a": 8.8, "b": 4.0})


def test_first_response_over_conversations_with_a_reply(con):
    # a: 10, 20, 30 min (4 has no reply). Median 20; p90 at 1.8: 20 + 0.8 * 10 = 28
    assert per_tag(con, metrics.median_first_response_minutes) == {"a": 20.0, "b": 20.0}
    assert per_tag(con, metrics.p90_first_response_minutes) == pytest.approx({"a": 28.0, "b": 20.0})


def test_reopen_rate_is_over_closed_conversations(con):
    # a: closed 1, 2, 4; of those only 2 was reopened -> 1/3. 3 (reopened, still open) is in neither count.
    assert per_tag(con, metrics.reopen_rate) == pytest.approx({"a": 1 / 3, "b": 1.0})
    none_closed = ibis.memtable({k: v[2:3] for k, v in TAGGED.items()})  # only 3, still open
    assert con.to_pyarrow(none_closed.aggregate(rate=metrics.reopen_rate(none_closed))).to_pylist() == [{"rate": None}]


def test_resolution_measures_of_a_tag(con):
    # The values worked out above, for tag a: 4 conversations, 3 closed, hours 4 / 8.8, first
    # response 20 / 28, reopen rate 1/3; the names are the columns the reports show.
    t = ibis.memtable(TAGGED)
    a = t.filter(t.tag == "a")
    found = con.to_pyarrow(a.aggregate(**metrics.resolution_measures(a))).to_pylist()
    assert found == [
        {
            "conversations": 4,
            "closed": 3,
            "median_hours_to_resolve": 4.0,
            "p90_hours_to_resolve": pytest.approx(8.8),
            "median_first_response_minutes": 20.0,
            "p90_first_response_minutes": pytest.approx(28.0),
            "reopen_rate": pytest.approx(1 / 3),
        }
    ]


def test_share_of_contacts(con):
    t = ibis.memtable({"with_reason": [3, 0, 2], "all_opened": [8, 0, 2]})
    shares = con.to_pyarrow(t.select(share=metrics.share_of_contacts(t.with_reason, t.all_opened))).column(0)
    assert shares.to_pylist() == [0.375, None, 1.0]  # nothing opened: no share, not a division by zero


def test_conversations_per_agent(con):
    t = ibis.memtable({"agent_id": [7, 7, 8], "conversation_id": [1, 2, 2]})
    rows = con.to_pyarrow(t.group_by("agent_id").aggregate(n=metrics.conversations_per_agent(t)).order_by("agent_id"))
    assert rows.to_pylist() == [{"agent_id": 7, "n": 2}, {"agent_id": 8, "n": 1}]


def ts(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2024, 1, day, hour) if day > 0 else dt.datetime(2023, 12, 31 + day, hour)


# (conversation, sequence, time, status or None for a non-status event)
EVENTS = [
    ("A", 1, ts(1, 10), None),
    ("A", 2, ts(1, 10), "OPEN"),
    ("A", 3, ts(2, 9), "CLOSED"),
    ("B", 1, ts(1, 23), None),  # never a status change: open
    ("C", 1, ts(2, 8), None),
    ("C", 2, ts(2, 9), "CLOSED"),
    ("C", 3, ts(3, 10), None),  # reopened by a message
    ("C", 4, ts(3, 11), "OPEN"),
    ("C", 5, ts(4, 12), "CLOSED"),
    ("D", 1, ts(3, 5), None),
    ("D", 2, ts(3, 6), "WAITING FOR CUSTOMER"),
    ("E", 1, ts(5, 10), "CLOSED"),
    ("E", 2, ts(5, 10), "OPEN"),  # same second: the later in order counts
]


def backlog(con, events, days) -> dict[dt.date, int]:
    e = ibis.memtable(
        [dict(zip(("conversation_id", "event_sequence", "event_at", "status"), r)) for r in events],
        schema={"conversation_id": "string", "event_sequence": "int64", "event_at": "timestamp", "status": "string"},
    )
    rows = con.to_pyarrow(metrics.backlog(e, ibis.memtable({"date": days}, schema={"date": "date"}))).to_pylist()
    return {r["date"]: r["backlog"] for r in rows}


def test_backlog_at_the_end_of_each_day(con):
    days = [dt.date(2023, 12, 31)] + [dt.date(2024, 1, n) for n in range(1, 6)]
    # 31 Dec: nothing opened. 1 Jan: A open, B open. 2 Jan: A and C closed, B open. 3 Jan: B, C
    # reopened (OPEN), D waiting. 4 Jan: C closed again. 5 Jan: E closed then opened in the same second.
    assert backlog(con, EVENTS, days) == dict(zip(days, [0, 2, 1, 3, 2, 3]))


def _backlog_by_hand(events, day: dt.date) -> int:
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    count = 0
    for c in {r[0] for r in events}:
        before = sorted((r for r in events if r[0] == c and r[2] < end), key=lambda r: r[1])
        statuses = [r[3] for r in before if r[3]]
        count += bool(before) and (not statuses or statuses[-1] != "CLOSED")
    return count


@st.composite
def event_logs(draw):
    rows = []
    for c in range(draw(st.integers(1, 6))):
        times = sorted(draw(st.lists(st.integers(0, 5 * 24), min_size=1, max_size=6)))
        for seq, hour in enumerate(times, 1):
            status = draw(st.sampled_from([None, "OPEN", "WAITING FOR CUSTOMER", "CLOSED"]))
            rows.append((f"c{c}", seq, dt.datetime(2024, 1, 1) + dt.timedelta(hours=hour), status))
    return rows


@given(event_logs())
def test_backlog_matches_a_status_replay(events):
    con = ibis.duckdb.connect()
    days = [dt.date(2024, 1, n) for n in range(1, 8)]
    assert backlog(con, events, days) == {day: _backlog_by_hand(events, day) for day in days}


# -- one definition: every use goes through the declared expression ---------------------------
# The code that shows numbers to people: the models, the report helpers, the site, the notebooks.
SCANNED = [
    *sorted(p for p in (ROOT / "lib/convo/models").glob("*.py") if p.name != "metrics.py"),  # the declarations
    ROOT / "lib/convo/reports/reporting.py",
    ROOT / "lib/convo/reports/contact_reasons.py",
    *sorted((ROOT / "lib/convo/site").glob("*.py")),
    *sorted(NOTEBOOKS.glob("*.py")),
]
# Ways of computing a declared metric by hand, in SQL or Ibis.
OWN_WAYS = {
    "a median or percentile": re.compile(
        r"\b(median|quantile\w*|percentile\w*|approx_quantile)\s*\(|\.(median|quantile|approx_median)\(", re.I
    ),
    "a reopen rate": re.compile(r"reopen_count\s*(>|>=|!=|<>)|avg\([^)]*reopen", re.I),
    "a share of contacts": re.compile(r"/\s*\(\s*SELECT\s+count|conversations\s*/\s*[\w.]*all_conversations", re.I),
    "conversations per agent": re.compile(r"conversations_handled\s*=\s*(?!metrics\.)"),
    "conversations opened or closed per group": re.compile(
        r"conversations_(opened|closed)\s*=\s*[\w.]+\.(count|nunique)\("
    ),
}


def _own_ways(text: str) -> list[str]:
    return [what for what, pattern in OWN_WAYS.items() if pattern.search(text)]


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_metric_is_computed_its_own_way(path):
    found = _own_ways(path.read_text())
    assert not found, f"{path.relative_to(ROOT)} computes {', '.join(found)} itself: use convo.models.metrics"


def test_the_scan_recognises_the_old_ways():
    """What the reports did before the metrics were declared must be caught."""
    assert _own_ways("round(quantile_cont(hours_to_resolve, 0.9), 2)") == ["a median or percentile"]
    assert _own_ways("p90=c.hours_to_resolve.quantile(0.9)") == ["a median or percentile"]
    assert _own_ways("avg((t.reopen_count > 0)::INT)") == ["a reopen rate"]
    assert _own_ways("100.0 * count(*) / (SELECT count(*) FROM fact_conversation_lifecycle)") == ["a share of contacts"]
    assert _own_ways("round(r.conversations / t.all_conversations, 4) AS share") == ["a share of contacts"]
    assert _own_ways("conversations_handled=a.count(),") == ["conversations per agent"]
    assert _own_ways("conversations_closed=c.conversation_id.nunique(),") == [
        "conversations opened or closed per group"
    ]


def _metric_calls(module_name: str) -> set[tuple[str, str]]:
    """(module.function, metric) for each call `metrics.<metric>(...)` in a top-level function; a
    call of a helper of convo.models.metrics counts as a call of each metric the helper calls."""
    tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    helpers = _helper_metrics()
    calls = set()
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        for node in ast.walk(fn):
            f = node.func if isinstance(node, ast.Call) else None
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "metrics":
                calls |= {(f"{module_name}.{fn.name}", name) for name in (f.attr, *helpers.get(f.attr, ()))}
    return calls


def _helper_metrics() -> dict[str, set[str]]:
    """The metrics each public helper of convo.models.metrics that is not a metric calls."""
    tree = ast.parse(inspect.getsource(metrics))
    return {
        fn.name: {
            node.func.id
            for node in ast.walk(fn)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in metrics.declared()
        }
        for fn in tree.body
        if isinstance(fn, ast.FunctionDef) and fn.name in NOT_METRICS
    }


CALLERS = [
    "convo.models.marts",
    "convo.models.dimensions",
    "convo.models.facts",
    "convo.models.intermediate",
    "convo.reports.reporting",
    "convo.reports.contact_reasons",
]
# Public helpers of convo.models.metrics that are not metrics.
NOT_METRICS = {"conversation_rows", "declared", "resolution_measures"}


def test_declared_uses_are_the_actual_uses():
    """metrics.yml's `code` lists exactly the functions that call each metric (so the site page is right)."""
    declared = {(fn, m.name) for m in metrics.declared().values() for fn in m.code}
    actual = {(fn, name) for module in CALLERS for fn, name in _metric_calls(module) if name not in NOT_METRICS}
    assert actual == declared, (
        f"used, not declared: {sorted(actual - declared)}; declared, not used: {sorted(declared - actual)}"
    )


def test_a_report_calling_the_resolution_measures_calls_each_of_their_metrics():
    assert _helper_metrics()["resolution_measures"] == {
        "conversations_opened",
        "conversations_closed",
        "median_hours_to_resolve",
        "p90_hours_to_resolve",
        "median_first_response_minutes",
        "p90_first_response_minutes",
        "reopen_rate",
    }
    for report in ("convo.reports.reporting.resolution", "convo.reports.contact_reasons.resolution"):
        assert (report, "reopen_rate") in _metric_calls(report.rsplit(".", 1)[0])


def test_every_metric_function_is_declared():
    functions = {
        name
        for name, fn in inspect.getmembers(metrics, inspect.isfunction)
        if fn.__module__ == metrics.__name__ and not name.startswith("_")
    } - NOT_METRICS
    assert functions == set(metrics.declared())


def _notebook_calls(stem: str) -> set[str]:
    text = (NOTEBOOKS / f"{stem}.py").read_text()
    aliases = {"reporting": "convo.reports.reporting", "cr": "convo.reports.contact_reasons"}
    return {f"{aliases[a]}.{fn}" for a, fn in re.findall(r"\b(reporting|cr)\.(\w+)\(", text)}


def test_reports_tables_and_charts_of_each_metric_exist():
    docs, built = table_docs(), models()
    reports = ROOT / "lib/convo/reports"
    sources = (reports / "reporting.py").read_text() + (reports / "contact_reasons.py").read_text()
    for m in metrics.declared().values():
        assert m.definition and m.dimensions and m.code, m.name
        for table in m.tables:  # the table's model computes the metric
            assert table in docs and f"{built[table].fn.__module__}.{table}" in m.code, (m.name, table)
        for report in m.reports:  # the notebook calls a function that computes it or reads its table
            calls = _notebook_calls(report)
            via_table = {fn for fn in calls if any(t in inspect.getsource(_function(fn)) for t in m.tables)}
            assert calls & set(m.code) or via_table, (m.name, report)
        for title in m.charts:
            assert title.replace("<grain>", "{s.grain}") in sources, (m.name, title)


def _function(dotted: str):
    module, name = dotted.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)
