"""GX Data Docs load nothing remote: no script, stylesheet, font or image from the network."""

import re

import pytest
from bs4 import BeautifulSoup

from conftest import ROOT, make_env
from convo.audit.data_docs import STYLESHEET, offline_page
from convo.build import runner
from convo.models.registry import table_docs

REMOTE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
CSS_REMOTE = re.compile(r"""(url\(\s*['"]?\s*(https?:)?//)|(@import\s+[^;]*//)""", re.IGNORECASE)


def remote_loads(html: str) -> list[str]:
    """Every resource a page would fetch from another host: scripts, stylesheets, icons, fonts,
    images, frames, and CSS `url()`/`@import` in style blocks and attributes (links to click are not loads)."""
    soup = BeautifulSoup(html, "html.parser")
    found = []
    for tag in soup.find_all(
        ["script", "link", "img", "source", "iframe", "embed", "object", "audio", "video", "image", "use"]
    ):
        for attr in ("src", "href", "data", "srcset", "poster", "xlink:href"):
            if REMOTE.match(tag.get(attr) or ""):
                found.append(f"<{tag.name} {attr}={tag.get(attr)}>")
    for text in [s.string or "" for s in soup.find_all("style")] + [t["style"] for t in soup.find_all(style=True)]:
        found += [m.group(0) for m in CSS_REMOTE.finditer(text)]
    return found


def test_a_page_loses_every_remote_resource_and_keeps_its_script_built_table():
    page = """<html><head>
<link rel="stylesheet" href="https://maxcdn.example/bootstrap.min.css"/>
<link rel="stylesheet" href="//cdn.example/fa.css"><link rel="shortcut icon" href="../static/favicon.ico"/>
<script src="https://code.example/jquery.js"></script>
<style>.logo { background: url('https://s3.example/logo.png') 0 0; } @import url("https://fonts.example/f.css");</style>
</head><body><img src="http://img.example/x.png"><img src="local.png">
<div style="background:url(//x.example/a.png)">t</div>
<a href="https://greatexpectations.io">a link, not a load</a>
<table id="tbl"></table>
<script>
  $('#tbl').bootstrapTable(
    Object.assign(
      {
        columns: [{'field': 'name', 'title': 'Suite'}, {'field': 'n', 'title': 'Checks'}],
        data: [{'name': 'dim_<b>user</b>', 'n': 3, '_table_row_link_path': 'expectations/dim_user.html'},
               {'name': 'dim_tag', 'n': 1}],
        toolbar: '#tbl-toolbar'
      }))
</script></body></html>"""
    assert len(remote_loads(page)) == 7  # the check below can fail: it sees all seven before
    out = offline_page(page, "static/styles/convo_offline.css")
    assert remote_loads(out) == []
    soup = BeautifulSoup(out, "html.parser")
    assert soup.find_all("script") == []
    assert [link["href"] for link in soup.find_all("link")] == [
        "../static/favicon.ico",
        "static/styles/convo_offline.css",
    ]
    assert [img["src"] for img in soup.find_all("img")] == ["local.png"]
    assert soup.find("a", href="https://greatexpectations.io") is not None
    rows = [[td.get_text() for td in tr.find_all(["th", "td"])] for tr in soup.find(id="tbl").find_all("tr")]
    assert rows == [["Suite", "Checks"], ["dim_user", "3"], ["dim_tag", "1"]]
    assert soup.find(id="tbl").find("a")["href"] == "expectations/dim_user.html"


@pytest.fixture(scope="module")
def data_docs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("data_docs")
    env = make_env(tmp)
    runner.build(env, [str(ROOT / "seeds" / "raw_conversation_events.csv")])
    runner.check(env)
    return env.reports_dir / env.name / "data_docs"


def test_convo_checks_data_docs_load_nothing_remote(data_docs):
    pages = sorted(data_docs.rglob("*.html"))
    assert len(pages) >= 1 + 2 * len(table_docs())  # the index, a suite page and a validation page per table
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert remote_loads(html) == [], page
        stylesheets = [link["href"] for link in BeautifulSoup(html, "html.parser").find_all("link", rel="stylesheet")]
        assert len(stylesheets) == 1 and (page.parent / stylesheets[0]).resolve() == (data_docs / STYLESHEET)
    for css in data_docs.rglob("*.css"):
        assert not CSS_REMOTE.search(css.read_text(encoding="utf-8")), css


def test_the_index_lists_every_validation_and_suite_without_a_script(data_docs):
    soup = BeautifulSoup((data_docs / "index.html").read_text(encoding="utf-8"), "html.parser")
    linked = {a["href"] for a in soup.select("table a[href]")}
    assert {f"expectations/{name}.html" for name in table_docs()} <= linked
    validations = {h for h in linked if h.startswith("validations/")}
    assert len(validations) == len(table_docs())
    assert all((data_docs / h.replace("%20", " ")).is_file() for h in validations)
