"""The "Use the data" page's examples work: every Python and SQL block on it is run against the
readers' copy of a warehouse built from the sample events, and answers as the warehouse does."""

import io
import re
from contextlib import redirect_stdout

import duckdb
import pytest

from conftest import ROOT, make_env
from convo.build import runner
from convo.engine import published_copy

PAGE = ROOT / "site" / "use-the-data.md"
FILE_ON_PAGE = "warehouse/prod.published.duckdb"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", PAGE.read_text(), flags=re.M | re.S)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    env = make_env(tmp_path_factory.mktemp("sample"), name="prod")
    runner.build(env, [str(ROOT / "seeds" / "raw_conversation_events.csv")])
    return env


def test_the_page_has_examples_in_each_language():
    assert len(_blocks("python")) == 3 and len(_blocks("sql")) >= 6
    assert all(FILE_ON_PAGE in block for block in _blocks("python"))
    assert FILE_ON_PAGE in _blocks("bash")[0]
    assert published_copy.path_of(ROOT / "warehouse" / "prod.duckdb") == ROOT / FILE_ON_PAGE


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_examples_run_and_print_what_the_warehouse_holds(sample, index):
    code = _blocks("python")[index].replace(FILE_ON_PAGE, str(published_copy.path_of(sample.warehouse)))
    printed = io.StringIO()
    with redirect_stdout(printed):
        exec(compile(code, f"{PAGE.name} python block {index + 1}", "exec"), {})
    con = duckdb.connect(str(sample.warehouse), read_only=True)
    try:
        statuses = [s for (s,) in con.execute("SELECT DISTINCT status FROM fact_conversation_lifecycle").fetchall()]
        categories = [c for (c,) in con.execute("SELECT DISTINCT category FROM dim_tag").fetchall()]
    finally:
        con.close()
    expected = categories if "dim_tag" in code else statuses
    assert expected and all(value in printed.getvalue() for value in expected), printed.getvalue()


@pytest.mark.parametrize("index", range(len(_blocks("sql"))))
def test_sql_examples_answer_as_the_published_warehouse_does(sample, index):
    sql = _blocks("sql")[index]
    copy = duckdb.connect(str(published_copy.path_of(sample.warehouse)), read_only=True)
    builder = duckdb.connect(str(sample.warehouse), read_only=True)
    try:
        answer = copy.execute(sql).fetchall()
        if "convo_meta.published" in sql:  # only the copy has it: check it against the run history
            ((environment, version, _, commit, clean),) = answer
            assert (environment, version) == ("prod", 1)
            assert builder.execute(
                "SELECT code_commit, code_clean FROM convo_meta.runs WHERE run_id = 1"
            ).fetchall() == [(commit, clean)]
        else:
            assert answer == builder.execute(sql).fetchall()
            assert answer or "rejected_conversation_events" in sql, "an example that shows nothing"
    finally:
        copy.close()
        builder.close()
