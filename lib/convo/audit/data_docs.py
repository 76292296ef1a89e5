"""GX Data Docs made to load nothing from the network.

GX writes pages that fetch jQuery, Bootstrap, bootstrap-table, Vega, Font Awesome and a logo from
five CDNs (some unpinned). A report of customer data must not call out when it is opened, and the
pages must read offline, so after GX has written them every page is rewritten:

- remote scripts, stylesheets, images and CSS `url(...)`s are dropped, and every script with them
  (they only drive the dropped libraries);
- the tables GX fills in the browser with bootstrap-table (the index's validation and suite lists)
  are written out as plain HTML tables from the data in their script;
- a small local stylesheet (`static/styles/convo_offline.css`) lays the pages out.

bs4 comes with nbconvert (which renders the notebooks); only `convo check` imports this module.
"""

from __future__ import annotations

import ast
import logging
import os
import re
from pathlib import Path

from bs4 import BeautifulSoup

log = logging.getLogger(__name__)
STYLESHEET = Path("static") / "styles" / "convo_offline.css"
_REMOTE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
_CSS_REMOTE_URL = re.compile(r"""url\(\s*(['"]?)\s*(https?:)?//[^)]*\)""", re.IGNORECASE)
_CSS_REMOTE_IMPORT = re.compile(r"""@import\s+(url\()?\s*['"]?\s*(https?:)?//[^;]*;""", re.IGNORECASE)
# GX's call that fills a table in the browser: $('#ID').bootstrapTable(Object.assign({columns: [...], data: [...]
_TABLE_SCRIPT = re.compile(
    r"\$\('#(?P<id>[\w-]+)'\)\.bootstrapTable\(\s*Object\.assign\(\s*\{\s*columns:\s*(?P<columns>\[.*?\]),\s*"
    r"data:\s*(?P<data>\[.*?\]),\s*toolbar:",
    re.DOTALL,
)

OFFLINE_CSS = """\
/* convo: GX Data Docs without their CDN stylesheets (Bootstrap, bootstrap-table, Font Awesome). */
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1f2328;
       line-height: 1.45; background: #fff; }
a { color: #0b5cad; }
nav, .navbar { background: #f3f4f6; padding: .5rem 1rem; border-bottom: 1px solid #d0d7de; }
.navbar-brand { display: none; }
.container-fluid, .container { padding: 0 1rem; }
.row { display: flex; flex-wrap: wrap; gap: 1rem; }
.col-12 { flex: 1 1 100%; }
[class*="col-md-"], [class*="col-lg-"], [class*="col-xl-"] { flex: 4 1 30rem; min-width: 0; }
.col-xl-2, .col-lg-3.col-md-4 { flex: 1 1 14rem; max-width: 22rem; }
.card { border: 1px solid #d0d7de; border-radius: 6px; margin: .75rem 0; padding: .5rem .75rem; }
.card-header { font-weight: 600; border-bottom: 1px solid #d0d7de; padding-bottom: .25rem; margin-bottom: .5rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; font-size: .9rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .5rem; text-align: left; vertical-align: top; }
thead th { background: #f6f8fa; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85rem; }
pre { white-space: pre-wrap; background: #f6f8fa; padding: .5rem; border-radius: 4px; }
.badge { display: inline-block; padding: 0 .4rem; border-radius: .6rem; background: #eaeef2; font-size: .8rem; }
.text-danger { color: #b42318; } .text-success { color: #1a7f37; } .text-muted { color: #59636e; }
.ge-failed-icon::before { content: "\\2717 failed"; color: #b42318; font-style: normal; }
.ge-success-icon::before { content: "\\2713 passed"; color: #1a7f37; font-style: normal; }
.fa-check-circle:not(.ge-success-icon)::before { content: "\\2713"; color: #1a7f37; font-style: normal; }
.fa-times:not(.ge-failed-icon)::before { content: "\\2717"; color: #b42318; font-style: normal; }
.cooltip > .top, .modal, .ge-walkthrough-modal, #ge-cta-footer, .invisible, .sr-only, button,
.btn, .dropdown-menu, .collapse:not(.show) { display: none; }
ul.nav, .list-group { list-style: none; padding-left: 0; }
.list-group-item { padding: .15rem 0; }
"""


def make_offline(docs_dir: Path) -> int:
    """Rewrite every page of the Data Docs in `docs_dir` and add the stylesheet; returns the pages."""
    (docs_dir / STYLESHEET).parent.mkdir(parents=True, exist_ok=True)
    (docs_dir / STYLESHEET).write_text(OFFLINE_CSS, encoding="utf-8")
    for css in docs_dir.rglob("*.css"):  # GX's own stylesheet asks for its logo from S3
        css.write_text(_without_remote_css(css.read_text(encoding="utf-8")), encoding="utf-8")
    pages = sorted(docs_dir.rglob("*.html"))
    for page in pages:
        href = Path(os.path.relpath(docs_dir / STYLESHEET, page.parent)).as_posix()
        page.write_text(offline_page(page.read_text(encoding="utf-8"), href), encoding="utf-8")
    return len(pages)


def offline_page(html: str, stylesheet_href: str) -> str:
    """One page with nothing remote left in it, its script-built tables written out, and the
    local stylesheet linked."""
    soup = BeautifulSoup(html, "html.parser")
    for script in soup.find_all("script"):
        if match := _TABLE_SCRIPT.search(script.string or ""):
            try:
                columns, rows = ast.literal_eval(match["columns"]), ast.literal_eval(match["data"])
            except (ValueError, SyntaxError) as exc:  # a GX version that writes these otherwise
                log.warning("data docs: table %s left empty, its data did not parse: %s", match["id"], exc)
            else:
                _write_table(soup, match["id"], columns, rows)
        script.decompose()
    for tag in soup.find_all(["link", "img", "source", "iframe", "embed", "object", "audio", "video"]):
        if any(_REMOTE.match(tag.get(attr) or "") for attr in ("href", "src", "data", "srcset", "poster")):
            tag.decompose()
    for tag in soup.find_all(style=True):
        tag["style"] = _without_remote_css(tag["style"])
    for style in soup.find_all("style"):
        style.string = _without_remote_css(style.string or "")
    link = soup.new_tag("link", rel="stylesheet", href=stylesheet_href)
    (soup.head or soup).append(link)
    return str(soup)


def _without_remote_css(css: str) -> str:
    return _CSS_REMOTE_URL.sub("none", _CSS_REMOTE_IMPORT.sub("", css))


def _write_table(soup: BeautifulSoup, table_id: str, columns: list[dict], rows: list[dict]) -> None:
    """Fill `<table id=table_id>` as bootstrap-table would have: a header per column, a row per
    record, the cells being GX's own markup, each row's first cell linking to its page."""
    table = soup.find("table", id=table_id)
    if table is None:
        return
    table.clear()
    head = soup.new_tag("tr")
    for column in columns:
        th = soup.new_tag("th")
        th.string = str(column.get("title", column["field"]))
        head.append(th)
    thead, tbody = soup.new_tag("thead"), soup.new_tag("tbody")
    thead.append(head)
    for row in rows:
        tr = soup.new_tag("tr")
        for i, column in enumerate(columns):
            td = soup.new_tag("td")
            cell = BeautifulSoup(str(row.get(column["field"], "")), "html.parser")
            if i == 0 and row.get("_table_row_link_path"):
                a = soup.new_tag("a", href=row["_table_row_link_path"])
                a.append(cell)
                td.append(a)
            else:
                td.append(cell)
            tr.append(td)
        tbody.append(tr)
    table.append(thead)
    table.append(tbody)
