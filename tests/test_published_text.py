"""Published reports and site: data shown as text only, and no absolute path of the building machine.

One `convo run` (half a minute: build, five notebooks, the site), in a fresh sample project under
a directory with a recognisable name. Its data carries many generated hostile strings at once, and
the values of the original report: as file names, as names of the environment's input
directories (the lineage diagram shows them), as tags (CSV, and Parquet with newlines), as
unknown event types and as values of rejected rows. Whatever they hold, the run succeeds, every
HTML page it publishes contains no element or attribute that came from them, each is shown as
its text, and the project's absolute path appears in none of them.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bs4 import BeautifulSoup
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from notebook_references import kernel_environment, sample_project
from test_escape import hostile_text

ROOT = Path(__file__).resolve().parents[1]
CONVO = str(ROOT / ".venv" / "bin" / "convo")
HEADER = ["event_timestamp", "conversation_id", "user_id", "agent_id", "event", "event_value"]
# Live markup each hostile value starts with: if escaping fails anywhere, one of these is an element.
PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    "`<svg onload=alert(3)>`",
    "[x](javascript:alert(4))",
    '<b convo-probe="1">',
    "```{raw} html\n<convo-probe>",
    "{raw}`<convo-probe>`",
    ":::{danger}\n<i onclick=x>",
]
# Characters a file name cannot hold on Linux; glob characters and `=` (DuckDB reads a folder
# `a=b` as a Hive partition), since taking paths literally is ingestion's business, not this test's.
NOT_IN_FILE_NAMES = str.maketrans("", "", "/\0*?[]{}\\=")

pytestmark = pytest.mark.slow


def _file_name(value: str, suffix: str) -> str:
    name = value.translate(NOT_IN_FILE_NAMES).encode()[:120].decode(errors="ignore")
    return (name if name.strip(".") else "x" + name) + suffix


def _rows(conversation: int, day: int, tags: list[str], events: list[str], rejected: list[str]) -> list[list[str]]:
    ts = lambda minute: f"2024-04-{day:02d} 10:{minute:02d}:00"  # noqa: E731
    rows = [[ts(0), str(conversation), "3000001", "", "status_changed_to", "Open"]]
    rows += [[ts(1 + i), str(conversation), "3000001", "", "tag_assigned", t] for i, t in enumerate(tags)]
    rows += [[ts(20 + i), str(conversation), "3000001", "", e, v] for i, (e, v) in enumerate(zip(events, tags))]
    rows += [[f"not a time {r}", str(conversation), "3000001", "", "tag_assigned", r] for r in rejected]
    return rows


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, but TOML wants DEL escaped and no surrogate pair."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _hostile_inputs(project: Path, values: list[str], n: int) -> dict[str, list[str]]:
    """Input folder number `n` of a project, named by the first value, holding a CSV and a Parquet
    file named by the next two; the values are its tags (CSV, and Parquet with newlines), unknown
    event types and values of rejected rows. What went where."""
    inputs = project / _file_name(values[0], "")
    inputs.mkdir()
    one_line = [v.replace("\n", " ").replace("\r", " ") for v in values]  # a CSV record is one line
    tags, events, rejected = one_line[1::3], one_line[2::3], one_line[3::3]
    csv_file, parquet_file = inputs / _file_name(values[1], ".csv"), inputs / _file_name(values[2], ".parquet")
    with csv_file.open("w", newline="") as f:
        csv.writer(f).writerows([HEADER, *_rows(30000000000001 + 2 * n, 10 + 2 * n, tags, events, rejected)])
    multiline = [v for v in values if "\n" in v] or [values[-1] + "\nline two"]
    rows = _rows(30000000000002 + 2 * n, 11 + 2 * n, multiline, [], [])
    pq.write_table(
        pa.table(
            {
                "event_timestamp": [r[0] for r in rows],
                "conversation_id": [int(r[1]) for r in rows],
                "user_id": [int(r[2]) for r in rows],
                "agent_id": pa.array([None] * len(rows), pa.int64()),
                "event": [r[4] for r in rows],
                "event_value": [r[5] for r in rows],
            }
        ),
        parquet_file,
    )
    return {
        "folders": [inputs.name],
        "files": [csv_file.name, parquet_file.name],
        "tags": [*tags, *multiline],
        "events": events,
    }


def hostile_project(dest: Path, value_sets: list[list[str]]) -> tuple[Path, dict[str, list[str]]]:
    """A sample project whose dev inputs are the bundled sample and a hostile folder of hostile
    files per set of values (`_hostile_inputs`); what went where."""
    project = sample_project(ROOT, dest)
    for source in (ROOT / "notebooks").glob("*.py"):
        shutil.copy(source, project / "notebooks" / source.name)
    sample = project / "sample" / "sample.csv"
    sample.parent.mkdir()
    shutil.copy(ROOT / "seeds" / "raw_conversation_events.csv", sample)
    shown = {"folders": [], "files": [], "tags": [], "events": []}
    for n, values in enumerate(value_sets):
        for what, these in _hostile_inputs(project, values, n).items():
            shown[what] += these
    inputs = ["sample", *shown["folders"]]
    config = (project / "convo.toml").read_text()
    (project / "convo.toml").write_text(
        config.replace(
            "[environments.dev]\n", f"[environments.dev]\ninputs = [{', '.join(map(_toml_string, inputs))}]\n"
        )
    )
    return project, shown


def _as_shown(value: str) -> str:
    return " ".join(value.split())


def _injected(page: Path) -> list[str]:
    """Elements and attributes on the page that only the payloads could have made."""
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    found = []
    for el in soup.find_all(True):
        found += [f"<{el.name} {a}>" for a in el.attrs if a.lower().startswith("on") or a == "convo-probe"]
        if (
            el.name == "convo-probe"
            or (el.name == "img" and el.get("src") == "x")
            or (el.name == "script" and "alert(" in el.get_text())
            or str(el.get("href", "")).strip().lower().startswith("javascript:")
        ):
            found.append(str(el)[:80])
    return found


def _text(page: Path) -> str:
    return _as_shown(BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser").get_text())


# No NUL: no file name can hold one, and how a CSV field with one is read is ingestion's business.
hostile_values = st.lists(
    st.tuples(st.sampled_from(PAYLOADS), hostile_text).map("".join).map(lambda v: v.replace("\0", "")),
    min_size=len(PAYLOADS),
    max_size=len(PAYLOADS) + 4,
    unique=True,
)


# The values of the original report: every run publishes them, beside one generated set.
ISSUE_VALUES = [
    "in`<img src=x onerror=alert(308)>`",
    "a`<img src=x onerror=alert(308)>`",
    "b`<img src=x onerror=alert(309)>`",
    "`x`<img src=x onerror=alert(1)>",
    "<b>weird</b> event",
    "<script>alert(2)</script>",
    "line1\n```{raw} html\n<script>alert(5)</script>\n```",
    "{raw} ::: ]] $(id) | * _ [x](javascript:alert(6)) %",
    "$\\frac$ <!-- &amp; &#60;",
    "#quot; --> #35; \"q\" 'q'",
]


# No shrinking: each run takes half a minute, and the failing values are printed whole anyway.
@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate])
@given(values=hostile_values)
def test_hostile_values_are_published_as_text_only(tmp_path_factory, values):
    marker = f"RECOGNISABLE-{uuid.uuid4().hex[:8]}"
    project, shown = hostile_project(tmp_path_factory.mktemp(marker) / "project", [values, ISSUE_VALUES])
    result = subprocess.run(
        [CONVO, "run", "--env", "dev", "--date", "2024-04-20"],
        cwd=project,
        env=kernel_environment(project),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    reports = project / "reports"
    pages = sorted(reports.rglob("*.html"))
    site, latest = reports / "site", reports / "dev" / "latest"
    assert (site / "runs.html").is_file() and (latest / "10_ingest.html").is_file()
    assert {p for p in pages if p.is_relative_to(site)} and {p for p in pages if "dev" in p.parts}
    injected = {str(p.relative_to(reports)): found for p in pages if (found := _injected(p))}
    assert not injected
    # The marker, and the first folders of the project's path: a table cell cut after 48 characters
    # could end before the marker.
    machine = (marker, str(project.parents[1]))
    absolute = [f"{p.relative_to(reports)}: {m}" for p in pages for m in machine if m in p.read_text(encoding="utf-8")]
    assert not absolute, f"the project's absolute path is published in {absolute}"

    files_read, runs, lineage = (
        _text(p) for p in (latest / "10_ingest.html", site / "runs.html", site / "lineage.html")
    )
    for name in shown["files"]:
        assert _as_shown(name) in files_read and _as_shown(name) in runs, name
    for name in shown["folders"]:
        assert _as_shown(name) in lineage, name
    for page in (latest / "20_dimensions.html", site / "reports" / "20_dimensions.html"):
        text = _text(page)
        assert all(_as_shown(tag) in text for tag in shown["tags"]), page
    staged = _text(latest / "10_ingest.html")
    assert all(_as_shown(event) in staged for event in shown["events"])
