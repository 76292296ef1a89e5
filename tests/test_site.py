"""The documentation site, built for real from a real warehouse, checked in its files and in Chromium.

One build serves most tests here: a warehouse built from the seed events and checked once more
(two runs with checks, so the trend has two points), a notebook executed by a real kernel and left
where `convo run` leaves its reports, then `build_site`. The browser tests serve the built site on
127.0.0.1 and drive the Debian Chromium (`apt-get install chromium`) through Playwright; the
screenshots they take go to reports/ci-screenshots/ for CI to keep.
"""

from __future__ import annotations

import collections
import functools
import html.parser
import http.server
import os
import re
import threading
import uuid
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urljoin

import duckdb
import nbformat
import pytest
from bs4 import BeautifulSoup
from nbclient import NotebookClient

from conftest import ROOT, make_env, query
from convo import cli
from convo.build import runner
from convo.models import metrics
from convo.models.registry import models, table_docs
from convo.provenance import CodeVersion
from convo.reports import reads
from convo.site import SiteBuildFailed, build_html, build_site, diagrams

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "reports" / "ci-screenshots"
SEED_EVENTS = ROOT / "seeds" / "raw_conversation_events.csv"
UNDOCUMENTED = "adhoc_undocumented_view"
REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.I)  # http://, https://, //host: anything not local


def _soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _text(path: Path) -> str:
    """The page's text as read (inline markup adds no spaces), whitespace collapsed."""
    return " ".join(_soup(path).get_text().split())


def _executed_notebook(folder: Path, warehouse: Path) -> tuple[Path, str]:
    """A notebook run by a real kernel, as `convo run` leaves it; returns it and a token it printed.

    The token is random at execution time: if the site ran the notebook again, it would differ.
    The notebook records the tables its query reads (convo/reads.py) where `convo run` would.
    """
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Conversations per status"),
        nbformat.v4.new_code_cell(
            "import duckdb, uuid\nfrom convo.reports import reads"
        ),  # no output: readers don't see it
        nbformat.v4.new_code_cell(
            f"con = duckdb.connect({str(warehouse)!r}, read_only=True)\n"
            "sql = 'SELECT status, count(*) FROM fact_conversation_lifecycle GROUP BY ALL ORDER BY ALL'\n"
            "for status, n in con.execute(sql).fetchall():\n"
            "    print(f'{status}: {n} conversations')\n"
            "reads.record(reads.of_sql(con, sql))\n"
            "print('token', uuid.uuid4().hex)"
        ),
    ]
    folder.mkdir(parents=True)
    reads_file = folder / f"status_report{reads.SUFFIX}"
    os.environ[reads.VARIABLE] = str(reads_file)  # the kernel inherits it, as under `convo run`
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    finally:
        del os.environ[reads.VARIABLE]
    path = folder / "status_report.ipynb"
    nbformat.write(nb, path)
    token = re.search(r"token (\w+)", nb.cells[2].outputs[0]["text"]).group(1)
    return path, token


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("site")
    env = make_env(tmp, inputs=(str(SEED_EVENTS),))
    runner.build(env)
    runner.check(env)
    # Drift: a view someone made by hand, in no model and no YAML. The site must still show it.
    con = duckdb.connect(str(env.warehouse))
    con.execute(f"CREATE VIEW main.{UNDOCUMENTED} AS SELECT 42 AS answer, 'x' AS remark")
    con.close()
    run_folder = env.reports_dir / env.name / "20240101T000000Z"
    notebook, token = _executed_notebook(run_folder, env.warehouse)
    (env.reports_dir / env.name / "latest").symlink_to(run_folder.name, target_is_directory=True)
    site = build_site(env)
    return SimpleNamespace(env=env, site=site, notebook=notebook, token=token)


# -- the site's content, from its files ----------------------------------------------------------
def _columns_on_page(page: Path) -> list[tuple[str, str]]:
    """(column, type) rows of the page's Columns table."""
    section = _soup(page).find("section", id="columns")
    rows = section.find("table").find("tbody").find_all("tr")
    return [tuple(td.get_text(" ", strip=True) for td in tr.find_all("td")[:2]) for tr in rows]


def test_every_table_and_column_of_the_warehouse_is_on_the_site(built):
    built_columns = collections.defaultdict(list)
    for row in query(
        built.env,
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'main' ORDER BY table_name, ordinal_position",
    ):
        built_columns[row["table_name"]].append((row["column_name"], row["data_type"]))
    assert set(table_docs()) <= set(built_columns), "every documented table is built"
    for table, columns in built_columns.items():
        page = built.site / "tables" / f"{table}.html"
        assert page.is_file(), f"no page for {table}"
        assert _columns_on_page(page) == columns, table


def test_an_undocumented_table_has_a_page_that_says_so(built):
    page = built.site / "tables" / f"{UNDOCUMENTED}.html"
    assert "This table is in the warehouse but not in the model documentation" in _text(page)
    assert _columns_on_page(page) == [("answer", "INTEGER"), ("remark", "VARCHAR")]
    assert UNDOCUMENTED in _text(built.site / "index.html")


def test_table_page_shows_keys_checks_rows_and_samples(built):
    doc = table_docs()["fact_conversation_tags"]
    page = built.site / "tables" / f"{doc.name}.html"
    soup = _soup(page)
    rows = query(built.env, f"SELECT count(*) AS n FROM main.{doc.name}")[0]["n"]
    assert f"{rows:,} (published version" in _text(page)
    keys = {
        tr.find_all("td")[0].get_text(strip=True): tr.find_all("td")[2].get_text(" ", strip=True)
        for tr in soup.find("section", id="columns").find("tbody").find_all("tr")
    }
    for column in doc.columns:
        if column.references:
            parent = column.references.split(".")[0]
            assert f"FK → {parent} . {column.references.split('.')[1]}" in keys[column.name]
            link = soup.find("section", id="columns").find("a", string=parent)
            assert link["href"].split("#")[0] == f"{parent}.html"
    checks = query(
        built.env,
        "SELECT check_name, severity FROM convo_meta.run_checks WHERE table_name = ?"
        " AND run_id = (SELECT max(run_id) FROM convo_meta.run_checks)",
        [doc.name],
    )
    shown = {
        (tr.find_all("td")[0].get_text(strip=True), tr.find_all("td")[1].get_text(strip=True))
        for tr in soup.find("section", id="checks").find("tbody").find_all("tr")
    }
    assert shown == {(c["check_name"], c["severity"]) for c in checks} and shown
    sample = soup.find("section", id="sample-rows").find("tbody").find_all("tr")
    first = query(built.env, f"SELECT conversation_id, tag FROM main.{doc.name} ORDER BY ALL LIMIT 1")[0]
    assert [td.get_text(strip=True) for td in sample[0].find_all("td")[:2]] == [
        str(first["conversation_id"]),
        first["tag"],
    ]


def test_home_page_says_when_the_data_was_refreshed_and_whether_the_checks_passed(built):
    text = _text(built.site / "index.html")
    version = query(built.env, "SELECT max(version) AS v FROM convo_meta.versions WHERE state = 'published'")[0]["v"]
    assert f"build run {version}, finished" in text
    latest = query(
        built.env,
        """
        SELECT run_id, count(*) FILTER (NOT success AND severity = 'error') AS errors,
               count(*) FILTER (NOT success AND severity = 'warn') AS warns
        FROM convo_meta.run_checks WHERE run_id = (SELECT max(run_id) FROM convo_meta.run_checks) GROUP BY run_id
    """,
    )[0]
    verdict = "passed its checks" if latest["errors"] == 0 else "failed error-level checks"
    assert f"run {latest['run_id']} {verdict}" in text
    assert f"{latest['errors']} failed at error level, {latest['warns']} failed at warn level" in text


def test_quality_page_has_every_suite_and_the_trend(built):
    text = _text(built.site / "quality.html")
    suites = {r["table_name"] for r in query(built.env, "SELECT DISTINCT table_name FROM convo_meta.run_checks")}
    headings = {h.get_text(strip=True).rstrip("#") for h in _soup(built.site / "quality.html").find_all("h4")}
    assert suites == headings
    runs = [r["run_id"] for r in query(built.env, "SELECT DISTINCT run_id FROM convo_meta.run_checks ORDER BY 1")]
    assert len(runs) == 2 and all(f"run {r}" in text for r in runs)
    assert (built.site / "_images" / "quality-trend.svg").is_file()


def test_runs_page_lists_the_history(built):
    soup = _soup(built.site / "runs.html")
    shown = [tr.find("td").get_text(strip=True) for tr in soup.find("table").find("tbody").find_all("tr")]
    assert shown == [str(r["run_id"]) for r in query(built.env, "SELECT run_id FROM convo_meta.runs ORDER BY 1 DESC")]


def test_reports_page_shows_the_executed_notebook_as_it_ran(built):
    page = built.site / "reports" / f"{built.notebook.stem}.html"
    text = _text(page)
    assert f"token {built.token}" in text, "stored outputs are shown, not re-executed"
    for row in query(built.env, "SELECT status, count(*) AS n FROM main.fact_conversation_lifecycle GROUP BY ALL"):
        assert f"{row['status']}: {row['n']} conversations" in text
    index = _soup(built.site / "reports" / "index.html")
    link = index.find("article").find("a", href=f"{built.notebook.stem}.html")
    assert link.get_text(strip=True) == "Conversations per status"  # the notebook's own title
    article = _soup(page).find("article")
    assert "import duckdb" not in article.get_text() and "con.execute" not in article.get_text(), "no code for readers"


def test_home_page_links_the_reports_and_gives_the_contact_reason_answer(built):
    home = _soup(built.site / "index.html")
    link = home.find("a", href=f"reports/{built.notebook.stem}.html")
    assert link is not None and link.get_text(strip=True) == "Conversations per status"
    text = _text(built.site / "index.html")
    top = query(
        built.env,
        """
        SELECT tag, t.contact_reason, count(*) AS n FROM main.int_conversation_tags JOIN main.dim_tag t USING (tag)
        GROUP BY ALL ORDER BY n DESC, tag LIMIT 1""",
    )[0]
    assert "Why customers contact support: Between" in text
    assert f"were {top['contact_reason']} ({top['tag']}, {top['n']} conversations" in text
    assert "The slowest reason to resolve was" in text


def test_no_page_shows_an_absolute_path_of_the_machine(built):
    """The warehouse and the reports live outside the project here: shown relative to it (`../..`)."""
    pages = [p for p in built.site.rglob("*.html") if p.name != f"{built.notebook.stem}.html"]  # its code names
    for machine_path in (str(built.env.warehouse.parent.parent), str(ROOT)):  # the warehouse: this test's own
        absolute = re.compile(r"(?<!\.\.)" + re.escape(machine_path))
        assert not [p.name for p in pages if absolute.search(p.read_text(encoding="utf-8"))], machine_path
    warehouse = os.path.relpath(built.env.warehouse, ROOT)
    assert f"warehouse {warehouse}" in _text(built.site / "index.html")


def test_lineage_and_erds_are_generated_from_the_metadata(built):
    lineage = _soup(built.site / "lineage.html").find("div", attrs={"data-diagram": "lineage"}).find("svg")
    labels = " ".join(lineage.get_text(" ").split())
    for model in models().values():
        assert model.name in labels
        for source in model.inputs:
            assert source in labels
    assert "status_report.py" in labels  # the notebook the latest run executed, from what it read
    page = _soup(built.site / "data-model.html")
    for design in diagrams.DESIGNS:
        erd = " ".join(page.find("div", attrs={"data-diagram": design.key}).find("svg").get_text(" ").split())
        for table in design.tables(table_docs()):
            assert table in erd


def _read_by(lineage_page: Path) -> dict[str, str]:
    """Table -> its "Read by" cell on the lineage page."""
    rows = _soup(lineage_page).find("table").find("tbody").find_all("tr")
    return {tr.find_all("td")[0].get_text(strip=True): tr.find_all("td")[3].get_text(" ", strip=True) for tr in rows}


def test_lineage_edges_are_the_tables_the_notebook_queried(built):
    """The executed notebook read fact_conversation_lifecycle (through its SQL, which names no other
    table): that is its one edge, whatever words the notebook's text holds."""
    read_by = _read_by(built.site / "lineage.html")
    readers = {t for t, cell in read_by.items() if "status_report.py" in cell}
    assert readers == {"fact_conversation_lifecycle"}


def test_star_erd_shows_how_agents_join_and_the_facts_measures(built):
    svg = _soup(built.site / "data-model.html").find("div", attrs={"data-diagram": "star"}).find("svg")
    text = " ".join(svg.get_text(" ").split())
    assert "dim_agent" in text and "int_agent_conversations" in text
    for measure in ("hours_to_resolve", "first_response_minutes", "reopen_count", "times_assigned"):
        assert measure in text, measure
    assert "measure" in text


# Tags that load what an attribute names (SVG's <image>/<use> too); <a href> is a link, not a load.
_LOADING = {
    "script": ("src",),
    "link": ("href",),
    "img": ("src", "srcset"),
    "source": ("src", "srcset"),
    "iframe": ("src",),
    "object": ("data",),
    "embed": ("src",),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "image": ("href", "xlink:href"),
    "use": ("href", "xlink:href"),
}
_MODULE_IMPORT = re.compile(r"""(?:\bimport\s*\(?|\bfrom)\s*["']([^"']+)""")


class _Loads(html.parser.HTMLParser):
    """Every URL a page would load: loading attributes, ES-module imports, CSS url() and @import."""

    def __init__(self):
        super().__init__()
        self.urls, self._inside = [], None

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        self.urls += [values[a] for a in _LOADING.get(tag, ()) if values.get(a)]
        self.urls += _css_urls(values.get("style") or "")
        self._inside = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag):
        self._inside = None

    def handle_data(self, data):
        if self._inside == "script":
            self.urls += _MODULE_IMPORT.findall(data)
        elif self._inside == "style":
            self.urls += _css_urls(data)


def _css_urls(css: str) -> list[str]:
    return re.findall(r"""url\(\s*["']?([^"')]+)""", css) + re.findall(r"""@import\s+["']([^"']+)""", css)


def _remote_references(page: str) -> list[str]:
    parser = _Loads()
    parser.feed(page)
    return [u for u in parser.urls if REMOTE.match(u.strip())]


def _remote_in_css(css: str) -> list[str]:
    return [u for u in _css_urls(css) if REMOTE.match(u.strip())]


def test_metrics_page_is_generated_from_the_declarations(built):
    page = _soup(built.site / "metrics.html")
    text = _text(built.site / "metrics.html")
    links = {a.get("href", "").split("#")[0] for a in page.find_all("a")}
    for m in metrics.declared().values():
        section = page.find("section", id=f"metric-{m.name.replace('_', '-')}")
        assert section is not None and section.find("h2").get_text(strip=True).rstrip("#") == m.label
        assert m.definition in " ".join(section.get_text().split())
        assert all(dimension in text for dimension in m.dimensions)
        assert all(f"tables/{t}.html" in links for t in m.tables), m.name
        assert all(r in section.get_text() for r in (*m.reports, *m.charts)), m.name
        assert all(c.rsplit(".", 1)[1] in section.get_text() for c in m.code), m.name
    assert "metrics.html" in {a.get("href") for a in _soup(built.site / "index.html").find_all("a")}


def test_stakeholder_pages_give_each_ticket_tasks_criteria_and_an_honest_state(built):
    plan = _soup(built.site / "stakeholders.html").find("section", id="work-plan")
    tickets = plan.find_all("section")
    assert len(tickets) == 6
    for ticket in tickets:
        terms = [dt.get_text(strip=True) for dt in ticket.find_all("dt")]
        assert terms == ["Tasks", "Done when", "State"], ticket.find("h3").get_text()
    state = {
        t.find("h3").get_text(strip=True).rstrip("#"): t.find_all("dd")[2].get_text(" ", strip=True) for t in tickets
    }
    assert state["1. Scope the metrics and insights"].startswith("Open.")  # its questions are unanswered
    out_of_scope = " ".join(_soup(built.site / "deployment.html").find("section", id="out-of-scope").get_text().split())
    assert all(what in out_of_scope for what in ("Training", "Pair or mob programming", "review of job configuration"))


def test_no_page_loads_anything_from_the_network(built):
    pages = sorted(built.site.rglob("*.html"))
    assert len(pages) > len(table_docs())
    problems = {str(p.relative_to(built.site)): refs for p in pages if (refs := _remote_references(p.read_text()))}
    problems |= {
        str(p.relative_to(built.site)): refs
        for p in built.site.rglob("*.css")
        if (refs := _remote_in_css(p.read_text()))
    }
    assert problems == {}


def test_the_remote_reference_check_can_fail():
    page = """<link rel="stylesheet" href="https://cdn.example/x.css"><script src="//cdn.example/x.js"></script>
    <script type="module">import mermaid from "https://cdn.jsdelivr.net/npm/mermaid.esm.min.mjs";</script>
    <style>@font-face { src: url(https://fonts.example/f.woff2) }</style><a href="https://example.org">a link</a>"""
    assert sorted(_remote_references(page)) == [
        "//cdn.example/x.js",
        "https://cdn.example/x.css",
        "https://cdn.jsdelivr.net/npm/mermaid.esm.min.mjs",
        "https://fonts.example/f.woff2",
    ]


# -- building -----------------------------------------------------------------------------------
def test_a_broken_reference_fails_the_build_and_keeps_the_previous_site(tmp_path):
    src, out = tmp_path / "src", tmp_path / "site"
    src.mkdir()
    (src / "index.md").write_text("# Home\n\nSee {doc}`the missing page <missing-page>`.\n")
    out.mkdir()
    (out / "index.html").write_text("the previous site")
    with pytest.raises(SiteBuildFailed, match="missing-page"):
        build_html(src, out, tmp_path / "work", title="test")
    assert (out / "index.html").read_text() == "the previous site"


def test_references_to_work_not_delivered_yet_are_marked_not_broken(tmp_path):
    src, out = tmp_path / "src", tmp_path / "site"
    src.mkdir()
    name = f"table_{uuid.uuid4().hex[:8]}"
    (src / "index.md").write_text(f"# Home\n\n{{table}}`{name}` and {{cli}}`{name}` and {{src}}`{name}/`.\n")
    build_html(src, out, tmp_path / "work", title="test")
    pending = _soup(out / "index.html").find_all(class_="convo-pending")
    assert [" ".join(p.get_text(" ").split()) for p in pending] == [
        f"{name} (not in this checkout yet)",
        f"convo {name} (not in this checkout yet)",
        f"{name}/ (not in this checkout yet)",
    ]


def test_convo_docs_without_a_warehouse_or_notebooks_says_so(tmp_path, capsys):
    config = tmp_path / "convo.toml"
    config.write_text('[defaults]\nreports_dir = "reports"\n\n[environments.test]\n')
    assert cli.main(["docs", "--env", "test", "--config", str(config)]) == 0
    site = tmp_path / "reports" / "site"
    assert capsys.readouterr().out.strip() == f"site: {site / 'index.html'}"
    # The warehouse's path relative to the project (no absolute path of this machine on the site).
    assert "Environment test has no warehouse yet (warehouse/test.duckdb): run convo build --env test" in _text(
        site / "index.html"
    )
    assert "No executed notebooks yet for environment test: run convo run --env test" in _text(
        site / "reports" / "index.html"
    )
    page = site / "tables" / "fact_conversation_lifecycle.html"
    assert [c for c, _ in _columns_on_page(page)] == list(table_docs()["fact_conversation_lifecycle"].column_names)
    assert "Not built in this environment yet." in _text(page)


# -- in the browser -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(built):
    handler = functools.partial(_QuietHandler, directory=str(built.site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # one line per request would bury pytest's output
        pass


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "the browser tests need Debian's chromium: run ./setup.sh (apt-get install chromium)"
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def browsing(browser, served):
    """A tab that records console errors, and every request for anything not on the local server."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    seen = SimpleNamespace(tab=context.new_page(), errors=[], remote=[])
    seen.tab.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
    seen.tab.on("pageerror", lambda e: seen.errors.append(str(e)))
    # Listening rather than intercepting: routing every request through Python doubles the test's time.
    local = (served, "data:", "blob:")
    seen.tab.on("request", lambda r: None if r.url.startswith(local) else seen.remote.append(r.url))
    yield seen
    context.close()


@pytest.mark.slow
def test_a_remote_request_would_be_caught(served, browsing):
    browsing.tab.goto(urljoin(served, "index.html"))
    browsing.tab.evaluate("fetch('http://192.0.2.1/font.woff2').catch(() => null)")  # TEST-NET-1: unroutable
    browsing.tab.wait_for_timeout(200)
    assert browsing.remote == ["http://192.0.2.1/font.woff2"]


def _pages(site: Path) -> list[Path]:
    """The site's pages (not the theme's HTML fragments in _static)."""
    return [p for p in sorted(site.rglob("*.html")) if p.relative_to(site).parts[0] != "_static"]


def test_every_page_loads_without_console_errors_or_remote_requests(built, served, browsing):
    failures = {}
    for page in _pages(built.site):
        rel = page.relative_to(built.site).as_posix()
        browsing.errors.clear()
        response = browsing.tab.goto(urljoin(served, rel), wait_until="load")
        if response.status != 200 or browsing.errors:
            failures[rel] = (response.status, list(browsing.errors))
    assert failures == {}
    assert browsing.remote == []


@pytest.mark.slow
def test_diagrams_render_as_svg_with_their_tables(served, browsing):
    page = browsing.tab
    docs = table_docs()
    expected = {("data-model.html", d.key): d.tables(docs) for d in diagrams.DESIGNS}
    expected[("lineage.html", "lineage")] = list(models())
    for (path, key), tables in expected.items():
        page.goto(urljoin(served, path))
        svg = page.locator(f'.convo-diagram[data-diagram="{key}"] svg')
        assert svg.count() == 1, key
        box = svg.bounding_box()
        assert box["width"] > 200 and box["height"] > 100, (key, box)
        text = svg.text_content()
        missing = [t for t in tables if t not in text]
        assert missing == [], key


@pytest.mark.slow
def test_search_finds_a_column(served, browsing):
    page = browsing.tab
    # A column that only one table has, so the search must lead to that table's page.
    owners = collections.defaultdict(set)
    for doc in table_docs().values():
        for column in doc.column_names:
            owners[column].add(doc.name)
    column, (table,) = next((c, t) for c, t in sorted(owners.items()) if len(t) == 1)
    page.goto(urljoin(served, f"search.html?q={column}"))
    results = page.locator("#search-results ul.search li a")
    results.first.wait_for(timeout=15_000)
    hrefs = results.evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert any(h.split("#")[0].endswith(f"tables/{table}.html") for h in hrefs), (column, hrefs)


@pytest.mark.slow
def test_key_pages_render_and_are_saved_as_screenshots(served, browsing):
    page = browsing.tab
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for path, title in (
        ("index.html", "convo: customer-support conversations, explained"),
        ("data-model.html", "Data model"),
        ("tables/fact_conversation_lifecycle.html", "fact_conversation_lifecycle"),
    ):
        page.goto(urljoin(served, path))
        assert page.locator("h1").first.inner_text().rstrip("#").strip() == title
        shot = SCREENSHOTS / (Path(path).stem + ".png")
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 20_000, f"{shot} looks blank"


def test_runs_page_says_which_code_each_run_used(built):
    table = _soup(built.site / "runs.html").find("table")
    column = [th.get_text(strip=True) for th in table.find("thead").find_all("th")].index("Code")
    shown = [tr.find_all("td")[column].get_text(strip=True) for tr in table.find("tbody").find_all("tr")]
    recorded = query(built.env, "SELECT code_commit, code_clean FROM convo_meta.runs ORDER BY run_id DESC")
    expected = [CodeVersion(r["code_commit"], r["code_clean"]).label for r in recorded]
    assert shown == expected and all(label != "-" for label in expected)  # the tests run in a git checkout
