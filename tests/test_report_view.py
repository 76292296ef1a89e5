"""What readers see of a report: formatted tables, no code, the tables each notebook queried.

Hand-made cases with their answers worked out, and properties over random frames; the reports
themselves, executed by `convo run` on the sample, are checked in tests/test_notebooks.py.
"""

from __future__ import annotations

import datetime
import re

import duckdb
import ibis
import nbformat
import pandas as pd
from bs4 import BeautifulSoup
from hypothesis import given
from hypothesis import strategies as st

from convo.config import Environment
from convo.reports import readable, reads, report_view
from convo.reports.notebooks import _command, _default_run_date, render_html
from convo.reports.reporting import measured_on

CODE = ".jp-CodeCell .jp-InputArea, .jp-InputPrompt"  # a code cell's source, as nbconvert's lab template writes it
MISSING_WORDS = re.compile(r"\b(NaN|None|NaT|nan|<NA>)\b")


# -- tables formatted for reading ----------------------------------------------------------------
def test_a_table_reads_as_words_numbers_dates_and_reasons():
    df = pd.DataFrame(
        {
            "tag": ["refund_status", "login"],
            "previous": [0, 1234],
            "relative_change": [float("nan"), 0.5],
            "opened_at": pd.to_datetime(["2024-03-04", None]),
            "closed_at": pd.to_datetime(["2024-03-04 10:05:09", None]),
            "median_hours": [12.25, 1500.0],
            "opened_date_key": [20240304, 20240305],
        }
    )
    readable.percent(readable.because(df, relative_change="new: none in the period before"), "relative_change")
    shown = readable.frame(df)
    assert list(shown.columns) == [
        "tag",
        "previous",
        "relative change",
        "opened at",
        "closed at",
        "median hours",
        "opened date key",
    ]
    assert shown.to_dict("list") == {
        "tag": ["refund_status", "login"],
        "previous": ["0", "1,234"],
        "relative change": ["new: none in the period before", "50.0 %"],
        "opened at": ["2024-03-04", "–"],  # midnight: a date; missing with no reason: a dash
        "closed at": ["2024-03-04 10:05:09", "–"],
        "median hours": ["12.25", "1,500"],
        "opened date key": ["20240304", "20240305"],  # an identifier: its digits, not a quantity
    }
    assert df.previous.tolist() == [0, 1234], "the frame itself keeps its numbers for charts and sentences"


def test_a_value_is_escaped_in_the_html():
    html = readable.html(pd.DataFrame({"tag": ["<script>alert(1)</script>"]}))
    assert "<script>" not in html and "&lt;script&gt;" in html


missing = st.sampled_from([None, float("nan"), pd.NA, pd.NaT])
cells = st.one_of(
    missing,
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet="abc xyz", max_size=5),
)


@given(
    st.lists(
        st.tuples(cells, cells, st.one_of(missing, st.datetimes(min_value=datetime.datetime(2000, 1, 1)))),
        min_size=1,
        max_size=8,
    )
)
def test_no_missing_value_shows_as_nan_none_or_nat(rows):
    df = pd.DataFrame(rows, columns=["a", "b", "when"])
    df["when"] = pd.to_datetime(df["when"])
    for shown in (readable.text(df), BeautifulSoup(readable.html(df), "html.parser").get_text()):
        assert not MISSING_WORDS.search(shown), shown
    assert readable.frame(df).shape == df.shape, "nothing dropped"


# -- the readers' view of a notebook -------------------------------------------------------------
def _notebook() -> dict:
    nb = nbformat.v4.new_notebook()
    setup = nbformat.v4.new_code_cell("from convo.reports import reporting")  # no output
    shown = nbformat.v4.new_code_cell(
        "reporting.table()",
        outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "42 conversations"}, execution_count=2)],
    )
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Facts"),
        nbformat.v4.new_code_cell("env = 'dev'", metadata={"tags": ["parameters"]}),
        setup,
        shown,
        nbformat.v4.new_raw_cell("raw"),
    ]
    return nb


def test_readers_get_the_prose_and_outputs_and_no_code_cell_without_output():
    view = report_view.for_readers(_notebook())
    assert [c["cell_type"] for c in view["cells"]] == ["markdown", "code"]
    assert view["cells"][1]["metadata"]["tags"] == ["remove-input"]
    assert len(_notebook()["cells"]) == 5, "the executed notebook itself is left as it is"


def test_the_readers_html_has_no_code_and_the_engineers_html_has_it(tmp_path):
    path = tmp_path / "30_facts.ipynb"
    nbformat.write(nbformat.from_dict(_notebook()), path)
    readers = BeautifulSoup(render_html(path).read_text(encoding="utf-8"), "html.parser")
    engineers = BeautifulSoup((tmp_path / "30_facts.code.html").read_text(encoding="utf-8"), "html.parser")
    assert not readers.select(CODE) and "reporting.table()" not in readers.get_text()
    assert "42 conversations" in readers.get_text()
    assert len(engineers.select(".jp-CodeCell .jp-InputArea")) == 3
    assert "reporting.table()" in engineers.get_text() and "env = 'dev'" in engineers.get_text()


# -- what a notebook reads ------------------------------------------------------------------------
def test_the_tables_of_a_statement_come_from_its_parse_not_its_words():
    con = duckdb.connect()
    sql = (
        "WITH recent AS (SELECT * FROM fact_conversation_lifecycle WHERE opened_at > ?)"
        " SELECT 'dim_user?' AS note, r.id FROM recent r JOIN convo_meta.runs m ON m.run_id = r.id"
        " WHERE list_contains(?, r.id) -- dim_agent"
    )
    assert reads.of_sql(con, sql) == {"fact_conversation_lifecycle", "runs"}


def test_the_tables_of_an_ibis_expression():
    a = ibis.table({"id": "int64", "tag": "string"}, name="int_conversation_tags")
    b = ibis.table({"tag": "string"}, name="dim_tag")
    assert reads.of_expression(a.join(b, "tag").filter(a.id > 1)) == {"int_conversation_tags", "dim_tag"}


def test_recorded_reads_load_per_notebook_and_keep_known_tables(tmp_path, monkeypatch):
    monkeypatch.setenv(reads.VARIABLE, str(tmp_path / f"50_contact_reasons{reads.SUFFIX}"))
    reads.record({"dim_tag", "runs"})
    reads.record({"dim_tag", "dim_date"})
    monkeypatch.delenv(reads.VARIABLE)
    reads.record({"fact_conversations"})  # outside `convo run`: written nowhere
    (tmp_path / f"40_data_quality{reads.SUFFIX}").write_text("")
    assert reads.load(tmp_path, {"dim_tag", "dim_date", "fact_conversations"}) == {
        "40_data_quality.py": [],
        "50_contact_reasons.py": ["dim_date", "dim_tag"],
    }


# -- the day ages are measured at ---------------------------------------------------------------
def _env(checks: dict) -> Environment:
    from pathlib import Path

    return Environment(
        "dev", Path("/p"), Path("/p/w.duckdb"), (), Path("/p/seeds"), Path("/p/reports"), 3, 1, "1GB", checks=checks
    )


def test_without_a_date_a_sample_environment_measures_at_the_data_end_and_a_live_one_today():
    started = datetime.datetime(2026, 12, 3, 14, 0, tzinfo=datetime.UTC)
    assert _default_run_date(_env({}), started) is None
    assert _default_run_date(_env({"freshness_max_age_hours": 26}), started) == datetime.date(2026, 12, 3)
    assert _command([], False, None) == "run"
    assert _command(["a.csv"], True, datetime.date(2024, 4, 20)) == "run --date 2024-04-20 --full-refresh a.csv"


def test_the_report_says_which_day_it_measures_at():
    on = datetime.date(2024, 4, 14)
    assert (
        "no run date" in measured_on(None, on).data
        and "2024-04-14, the day of the newest event" in measured_on(None, on).data
    )
    assert measured_on("2024-04-20", on).data.startswith("Ages and freshness are measured at the end of the run date")
