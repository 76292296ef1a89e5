"""Data is text: each escaping function, checked by the real renderer of its format.

Markdown goes through the two parsers that render it here: MyST's (markdown-it, as the site's
Sphinx build configures it) and nbconvert's (mistune, for notebook Markdown outputs in the HTML
reports). Mermaid labels go through mermaidx, charts through matplotlib.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it.renderer import RendererHTML
from matplotlib.figure import Figure
from myst_parser.config.main import MdParserConfig
from myst_parser.parsers.mdit import create_md_parser
from nbconvert.filters.markdown_mistune import markdown2html_mistune

from convo import escape
from convo.shown_paths import project_path, project_paths_in
from convo.site import diagrams
from convo.site import markdown as md

# Pieces that mean something to HTML, Markdown, MyST, Mermaid, mathtext or a shell.
HOSTILE_PIECES = [
    "<",
    ">",
    "&",
    '"',
    "'",
    "`",
    "```",
    "~~~",
    "\n",
    "\t",
    " ",
    "{raw}",
    "{raw} html",
    ":::",
    "]]",
    "[[",
    "$(",
    ")",
    "$",
    "$$",
    "|",
    "*",
    "_",
    "[",
    "]",
    "(",
    "%",
    "#",
    "\\",
    "{",
    "}",
    "!",
    "-",
    "+",
    "=",
    ";",
    ":",
    "&amp;",
    "&lt;b&gt;",
    "&#60;",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    "<b>",
    "</p>",
    "<!--",
    "-->",
    "[x](javascript:alert(3))",
    "<http://example.com>",
    "www.example.com",
    "{{",
    "}}",
    "%%",
    "#quot;",
    "#35;",
    "-->|",
    "---",
    "1.",
    "> ",
    "    ",
    "\\$",
    "$\\frac$",
    "^",
    "~",
    "{eval-rst}",
    "a",
    "Z",
    "9",
]
hostile_text = st.lists(st.sampled_from(HOSTILE_PIECES) | st.text(max_size=3), max_size=12).map("".join)


@functools.cache
def _myst_parser():
    """MyST's parser with the site's extensions, and those that would add markup to plain text."""
    config = MdParserConfig(enable_extensions={"colon_fence", "deflist", "dollarmath", "linkify"})
    return create_md_parser(config, RendererHTML)


def _myst_html(markdown: str) -> str:
    return _myst_parser().render(markdown)


def _only_text(rendered: str, expected: str, container: str) -> None:
    """`rendered` holds no element but `container` around the text, and the text is `expected`."""
    soup = BeautifulSoup(rendered, "html.parser")
    assert [el.name for el in soup.find_all(True)] == ([container] if expected else []), rendered
    assert soup.get_text().strip() == expected


def _as_shown(value: str) -> str:
    """What HTML shows of a value: runs of whitespace as one space (the parsers' NUL becomes U+FFFD)."""
    return " ".join(value.replace("\0", "\ufffd").split())


@settings(max_examples=400, deadline=None)
@given(hostile_text)
def test_markdown_renders_as_exactly_the_text_in_myst_and_in_notebook_output(value):
    escaped = escape.markdown(value)
    _only_text(_myst_html(escaped), _as_shown(value), "p")
    _only_text(markdown2html_mistune(escaped), _as_shown(value), "p")


@settings(max_examples=200, deadline=None)
@given(hostile_text, hostile_text)
def test_markdown_in_a_table_cell_stays_in_its_cell(left, right):
    table = md.table(["a", "b"], [[escape.markdown(left), escape.markdown(right)]])
    soup = BeautifulSoup(_myst_html(table), "html.parser")
    assert {el.name for el in soup.find_all(True)} == {"table", "thead", "tbody", "tr", "th", "td"}
    (row,) = soup.find("tbody").find_all("tr")
    assert [td.get_text() for td in row.find_all("td")] == [_as_shown(left), _as_shown(right)]


def test_markdown_escapes_by_hand():
    assert escape.markdown("a`<img src=x onerror=alert(308)>`.csv") == r"a\`\<img src\=x onerror\=alert\(308\)\>\`\.csv"
    assert escape.markdown("line1\n```{raw} html\n<script>") == r"line1 \`\`\`\{raw\} html \<script\>"
    assert escape.markdown("refund_delay") == r"refund\_delay"


# A handful of examples: each renders a diagram in Mermaid (several seconds), many labels at a time.
@settings(max_examples=3, deadline=None)
@given(st.lists(hostile_text.filter(lambda s: s.strip()), min_size=1, max_size=12))
def test_mermaid_labels_render_as_exactly_their_text(tmp_path_factory, labels):
    nodes = [diagrams.LineageNode(f"input_{i}", label, "inputs") for i, label in enumerate(labels)]
    nodes.append(diagrams.LineageNode("stg", "stg_conversation_events", "staging"))
    source = diagrams.lineage(nodes, [(n.id, "stg") for n in nodes[:-1]])
    svg = diagrams.render({"lineage": source}, tmp_path_factory.mktemp("mermaid"), workers=1)["lineage"]
    soup = BeautifulSoup(svg, "html.parser")
    shown = [" ".join(span.get_text().split()) for span in soup.find_all("span", class_="nodeLabel")]
    assert sorted(shown) == sorted(_as_shown(label) for label in [*labels, "stg_conversation_events"])
    assert {el.name for el in soup.select("span.nodeLabel *")} <= {"p"}  # no element from a label


def test_mermaid_escapes_by_hand():
    assert escape.mermaid('in/a "b".csv') == "in/a #34;b#34;.csv"
    assert escape.mermaid("<img>\n#") == "#60;img#62;#10;#35;"


@pytest.mark.filterwarnings("ignore:Glyph")  # control characters have no glyph: drawn as boxes
@settings(max_examples=30, deadline=None)
@given(hostile_text.filter(str.strip))  # staging trims values and rejects an empty tag
def test_chart_labels_draw_as_their_text(value):
    fig = Figure()
    ax = fig.subplots()
    label = escape.matplotlib(value)
    ax.bar([label], [1], label=label)
    legend = ax.legend()
    fig.savefig(io.BytesIO(), format="png")  # mathtext would fail here, or draw other text
    assert [t.get_text() for t in legend.get_texts()] == [label]  # a legend leaves out labels starting with _
    assert escape.matplotlib("$\\frac$") == "\\$\\frac\\$" and escape.matplotlib("_x") == " _x"


def test_project_paths():
    root = Path("/srv/builds/project")
    assert project_path("/srv/builds/project/in/a.csv", root) == "in/a.csv"
    assert project_path("/srv/data/a.csv", root) == "../../data/a.csv"
    assert project_path(root, root) == "."
    assert project_paths_in("build /srv/builds/project/in/a.csv /srv/builds/project2/b.csv", root) == (
        "build in/a.csv /srv/builds/project2/b.csv"
    )
    assert project_paths_in("report: /srv/builds/project; warehouse /srv/builds/project", root) == (
        "report: .; warehouse ."
    )
    assert project_paths_in("/x/y", Path("/")) == "/x/y"


@pytest.mark.parametrize("value", ["a\nb", "x|y", "`", ""])
def test_table_values_keep_the_row(value):
    soup = BeautifulSoup(_myst_html(md.table(["v"], [[md.value(value)]])), "html.parser")
    assert [td.get_text() for td in soup.find("tbody").find_all("td")] == [_as_shown(value)]
