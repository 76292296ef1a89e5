"""The generated pages: MyST Markdown written from the model metadata and the warehouse.

Hand-written pages (site/*.md) include the fragments written to `_generated/` and link to the
pages written here (tables, data quality, runs, reports, CLI reference, source files).
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from convo.config import Environment
from convo.engine import state as recorded
from convo.engine.state import CheckRow
from convo.models import metrics
from convo.models.registry import Model, TableDoc
from convo.provenance import CodeVersion
from convo.reports import report_view
from convo.shown_paths import project_path, project_paths_in
from convo.site import diagrams, links
from convo.site import markdown as md
from convo.site.state import WarehouseState

GENERATED = "_generated"  # fragments included by the hand-written pages (not pages themselves)
REPORTING_LAYERS = ("marts", "facts", "dimensions")  # the layers stakeholders query
# What loads the tables that no model computes (TableDoc.built_by).
LOADERS = {"ingestion": "convo.build.ingest", "seed": "convo.build.seeds"}


@dataclass(frozen=True)
class SiteData:
    """Everything the generated pages are written from."""

    env: Environment
    repo: Path
    docs: Mapping[str, TableDoc]
    models: Mapping[str, Model]
    state: WarehouseState | None
    svgs: Mapping[str, str]  # diagram key -> inline SVG
    notebook_reads: Mapping[str, list[str]]  # notebook source -> tables it reads
    executed_notebooks: list[Path]  # of the latest successful `convo run`
    contact_reasons: str | None = None  # the contact-reason answer, Markdown (None: no data yet)

    @property
    def table_names(self) -> list[str]:
        """Documented and published tables, reporting layers first."""
        published = self.state.tables if self.state else {}
        names = dict.fromkeys([*self.docs, *published])
        order = {layer: i for i, layer in enumerate(REPORTING_LAYERS)}
        return sorted(names, key=lambda n: (order.get(self.layer(n), len(order)), self.layer(n), n))

    def layer(self, table: str) -> str:
        return self.docs[table].layer if table in self.docs else "undocumented"

    def shown(self, path: str | Path) -> str:
        """A data path (warehouse, input file, report) as shown to readers: relative to the project."""
        return project_path(path, self.env.root)

    def rel(self, path: str | Path) -> str:
        """A source file's path as shown to readers: relative to the repository when inside it."""
        path = Path(path)
        try:
            return str(path.resolve().relative_to(self.repo))
        except ValueError:
            return str(path)

    def readers(self, table: str) -> list[str]:
        return [m.name for m in self.models.values() if table in m.inputs]

    def notebooks_reading(self, table: str) -> list[str]:
        return [nb for nb, tables in self.notebook_reads.items() if table in tables]

    def checks_of(self, table: str) -> list[CheckRow]:
        return [c for c in self.state.latest_checks if c.table_name == table] if self.state else []


def write_all(data: SiteData, src: Path) -> None:
    pages = {
        f"{GENERATED}/freshness.md": freshness(data),
        f"{GENERATED}/at-a-glance.md": at_a_glance(data),
        f"{GENERATED}/table-guide.md": table_guide(data),
        f"{GENERATED}/lineage.md": lineage(data),
        "tables/index.md": tables_index(data),
        "quality.md": quality(data),
        "runs.md": runs(data),
        "reports/index.md": reports(data),
        "metrics.md": metrics_page(data),
        "cli.md": cli_reference(),
    }
    for design in diagrams.DESIGNS:
        pages[f"{GENERATED}/erd-{design.key}.md"] = erd(data, design)
    for name in data.table_names:
        pages[f"tables/{name}.md"] = table_page(data, name)
    for relpath, content in pages.items():
        (src / relpath).parent.mkdir(parents=True, exist_ok=True)
        (src / relpath).write_text(content, encoding="utf-8")
    for notebook in data.executed_notebooks:  # the readers' view: outputs, no code
        view = report_view.for_readers(json.loads(notebook.read_text(encoding="utf-8")))
        (src / "reports" / notebook.name).write_text(json.dumps(view, indent=1), encoding="utf-8")
    if data.state and len(data.state.check_run_ids) > 1:
        trend_chart(data.state, src / "quality-trend.svg")


def write_source_pages(src: Path, repo: Path) -> None:
    """A page for every file or folder a `{src}` role names anywhere in the site, and their index."""
    texts = "\n".join(p.read_text(encoding="utf-8") for p in src.rglob("*.md"))
    paths = [p for p in links.referenced(texts, "src") if links.source_exists(repo, p)]
    for path in paths:
        target = src / f"{links.source_docname(path)}.md"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source_page(repo, path), encoding="utf-8")
    entries = "\n".join(f"{p} </{links.source_docname(p)}>" for p in sorted(paths))
    (src / "source").mkdir(exist_ok=True)
    (src / "source/index.md").write_text(
        "# Source files\n\nThe files and folders this site cites, as they were when it was built.\n\n"
        + md.fenced(f":maxdepth: 1\n\n{entries}", "{toctree}"),
        encoding="utf-8",
    )


# -- home ---------------------------------------------------------------------------------------
def freshness(data: SiteData) -> str:
    env, state = data.env, data.state
    if state is None:
        return md.fenced(
            f"Environment {md.text(env.name)} has no warehouse yet ({md.text(data.shown(env.warehouse))}):"
            f" run {md.text(f'convo build --env {env.name}')}. Table pages list the documented columns only.",
            "{warning}",
        )
    lines = [f"- **Environment:** {md.text(env.name)}, warehouse {md.text(data.shown(state.path))}"]
    build = state.run(state.published_version)
    if state.published_version:
        finished = md.timestamp(build.finished_at) if build else "(run no longer listed)"
        lines.append(
            f"- **Data last refreshed:** build run {state.published_version}, finished {finished};"
            f" published {md.timestamp(state.published_at)}"
        )
    else:
        lines.append(f"- **Data last refreshed:** never: nothing is published yet; run {md.code('convo build')}")
    if state.runs:
        last = state.runs[0]
        lines.append(
            f"- **Last run:** run {last.run_id} ({_recorded(data, last.command)}),"
            f" **{last.status}**, started {md.timestamp(last.started_at)}"
            + (f": {_recorded(data, last.message)}" if last.message else "")
        )
    checks = state.latest_checks
    if not checks:
        lines.append("- **Checks:** none recorded yet")
        return "\n".join(lines) + "\n"
    summary = _check_summary(checks)
    run_id = checks[0].run_id
    verdict = "passed its checks" if summary["error"] == 0 else "**failed** error-level checks"
    lines.append(
        f"- **Checks:** run {run_id} {verdict}: {_summary_text(summary)}. See {{doc}}`data quality </quality>`."
    )
    admonition = (
        "{tip}"
        if summary["error"] == 0 and summary["warn"] == 0
        else ("{warning}" if summary["error"] == 0 else "{danger}")
    )
    headline = (
        f"The last run with checks (run {run_id}) passed them all."
        if admonition == "{tip}"
        else f"Run {run_id}: {summary['error']} error-level and {summary['warn']} warning-level checks failed."
    )
    return "\n".join(lines) + "\n\n" + md.fenced(headline, admonition)


def at_a_glance(data: SiteData) -> str:
    """The latest reports, linked, and the contact-reason answer of the published data."""
    if not data.executed_notebooks:
        reports_line = f"No reports yet: run {md.code(f'convo run --env {data.env.name}')}."
    else:
        reports_line = "**Latest reports:** " + " · ".join(
            f"{{doc}}`{_role_title(_notebook_title(nb))} </reports/{nb.stem}>`" for nb in data.executed_notebooks
        )
    answer = data.contact_reasons or "No contact reasons yet: nothing is published."
    return f"{reports_line}\n\n**Why customers contact support:** {answer}\n"


def _role_title(title: str) -> str:
    """A title as a role's link text, which is read literally (a Markdown escape would show): only
    the characters that would end it or start its target are left out."""
    return re.sub(r"[`<>]", "", title)


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+(?=[A-Z])", text, maxsplit=1)[0]


def table_guide(data: SiteData) -> str:
    rows = []
    for name in data.table_names:
        doc = data.docs.get(name)
        rows.append(
            [
                _table_link(data, name),
                md.text(data.layer(name)),
                md.prose(_first_sentence(doc.description)) if doc else "*undocumented*",
                md.prose(doc.grain) if doc else "",
                _rows(data, name),
            ]
        )
    return md.table(["Table", "Layer", "Use it for", "Grain", "Rows"], rows)


# -- diagrams -----------------------------------------------------------------------------------
def _diagram(key: str, svg: str, label: str, legend: str = "") -> str:
    return md.fenced(
        f'<div class="convo-diagram" data-diagram="{key}" role="img" aria-label="{label}">\n{svg}\n{legend}</div>',
        "{raw} html",
    )


def erd(data: SiteData, design: diagrams.Design) -> str:
    tables = design.tables(data.docs)
    relationships = [
        [f"{{table}}`{t}`", md.code(c.name), _reference(c.references)]
        for t in tables
        for c in data.docs[t].foreign_keys
        if c.references.split(".")[0] in tables
    ]
    return (
        _diagram(design.key, data.svgs[design.key], f"{design.title}: entity-relationship diagram")
        + "\n**Tables:** "
        + ", ".join(f"{{table}}`{t}`" for t in tables)
        + "\n\n"
        + md.table(["Table", "Foreign key", "Refers to"], relationships)
    )


def _table_link(data: SiteData, name: str) -> str:
    """A link to a table's page; a source the runner provides (accepted_events) has none."""
    if name in data.docs:
        return f"{{table}}`{name}`"
    if data.state and name in data.state.tables:  # published but undocumented: its page says so
        return f"{{ref}}`{name} <{links.table_label(name)}>`"
    return md.code(name)


def _reads(data: SiteData, name: str) -> str:
    if name in data.models:
        return ", ".join(_table_link(data, i) for i in data.models[name].inputs) or "-"
    built_by = data.docs[name].built_by if name in data.docs else None
    return {"ingestion": "input files", "seed": "seed files"}.get(built_by, "-")


def _read_by(data: SiteData, name: str) -> str:
    readers = [_table_link(data, r) for r in data.readers(name)]
    readers += [f"notebook {md.code(nb)}" for nb in data.notebooks_reading(name)]
    return ", ".join(readers) or "-"


def lineage(data: SiteData) -> str:
    rows = [
        [_table_link(data, n), md.text(data.layer(n)), _reads(data, n), _read_by(data, n)] for n in data.table_names
    ]
    note = (
        ""
        if data.notebook_reads
        else (
            "\nNo report notebooks yet: the tables each notebook reads are recorded while `convo run` executes it"
            " ({src}`lib/convo/reports/reads.py`), and appear here as the last step after the next successful run.\n"
        )
    )
    return (
        _diagram("lineage", data.svgs["lineage"], "Lineage from input files to notebooks", _legend(data))
        + note
        + "\n"
        + md.table(["Table", "Layer", "Reads", "Read by"], rows)
    )


def _legend(data: SiteData) -> str:
    """The lineage's colour key, for the layers that occur in it."""
    present = {data.layer(n) for n in data.table_names} | {"inputs", "sources"}
    if data.notebook_reads:
        present.add("notebooks")
    items = "".join(
        f'<span class="convo-legend-item"><span class="convo-swatch" style="background:{colour}"></span>{layer}</span>'
        for layer, colour in diagrams.LAYER_COLOURS.items()
        if layer in present
    )
    return f'<p class="convo-legend">{items}</p>'


# -- tables -------------------------------------------------------------------------------------
def _reference(references: str) -> str:
    """`dim_user.id` -> a link to dim_user's page, then the column."""
    table, column = references.split(".")
    return f"{{table}}`{table}`.{md.code(column)}"


def _rows(data: SiteData, table: str) -> str:
    if data.state and table in data.state.tables:
        return f"{data.state.tables[table].rows:,}"
    return "not built"


def tables_index(data: SiteData) -> str:
    entries = "\n".join(f"/tables/{n}" for n in data.table_names)
    return (
        "# Tables\n\nEvery table published in the warehouse and every documented table, with its purpose,"
        " grain and size. Each page lists the columns, keys, checks and a few sample rows.\n\n"
        "```{include} ../_generated/table-guide.md\n```\n\n" + md.fenced(f":hidden:\n\n{entries}", "{toctree}")
    )


def _module_file(data: SiteData, module: str) -> str:
    return data.rel(inspect.getsourcefile(importlib.import_module(module)))


def _provenance(data: SiteData, name: str) -> list[list[str]]:
    doc, model = data.docs.get(name), data.models.get(name)
    rows = []
    if model:
        rows.append(["Built by", f"model {md.code(name)} in {{src}}`{data.rel(inspect.getsourcefile(model.fn))}`"])
    elif doc and doc.built_by in LOADERS:
        rows.append(["Loaded by", f"{md.text(doc.built_by)}: {{src}}`{_module_file(data, LOADERS[doc.built_by])}`"])
    rows += [["Reads", _reads(data, name)], ["Read by", _read_by(data, name)]]
    if doc:
        rows.append(["Documented in", f"{{src}}`{data.rel(data.repo / 'lib/convo/models' / f'{doc.layer}.yml')}`"])
    return rows


def table_page(data: SiteData, name: str) -> str:
    doc = data.docs.get(name)
    published = data.state.tables.get(name) if data.state else None
    out = [f"({links.table_label(name)})=", f"# {name}", ""]
    if doc:
        out += [md.prose(doc.description), ""]
    else:
        out += [
            md.fenced(
                "This table is in the warehouse but not in the model documentation"
                " (lib/convo/models/*.yml): document it there.",
                "{warning}",
            )
        ]
    facts = [["Layer", md.text(data.layer(name))]]
    if doc:
        facts += [["Grain", md.prose(doc.grain)], ["Primary key", ", ".join(md.code(k) for k in doc.primary_key)]]
    version = f" (published version {data.state.published_version})" if published else ""
    facts.append(["Rows", _rows(data, name) + version])
    facts += _provenance(data, name)
    out += [md.table(["", ""], facts), "## Columns", "", _columns(data, name), "## Checks", "", _checks(data, name)]
    out += ["## Sample rows", "", _sample(data, name)]
    return "\n".join(out)


def _columns(data: SiteData, name: str) -> str:
    doc = data.docs.get(name)
    types = data.state.tables[name].types if data.state and name in data.state.tables else {}
    documented = {c.name: c for c in doc.columns} if doc else {}
    rows = []
    for column in dict.fromkeys([*types, *documented]):
        c = documented.get(column)
        keys = []
        if doc and column in doc.primary_key:
            keys.append("PK")
        if c and c.references:
            keys.append(f"FK → {_reference(c.references)}")
        description = md.prose(c.description) if c else "*undocumented: add it to the model's YAML file*"
        if c and c.load_time:
            description += " *(set at load time)*"
        data_type = md.text(types[column]) if column in types else ("*not built*" if data.state else "-")
        rows.append([md.code(column), data_type, "<br>".join(keys), description])
    return md.table(["Column", "Type", "Key", "Description"], rows)


def _result(check: CheckRow) -> str:
    if check.reason and check.reason.startswith("skipped"):
        return "skipped"
    return "passed" if check.success else "**failed**"


def _checks(data: SiteData, name: str) -> str:
    suite = f"expectations/{name}.json"
    intro = f"Suite: {{src}}`{suite}`. " if (data.repo / suite).is_file() else ""
    checks = data.checks_of(name)
    if not checks:
        return intro + "No checks recorded for this table yet: run `convo build` or `convo check`.\n"
    intro += f"Results of run {checks[0].run_id}.\n\n"
    rows = [[md.text(c.check_name), md.text(c.severity), _result(c), _count(c), _detail(data, c)] for c in checks]
    return intro + md.table(["Check", "Severity", "Result", "Failing", "Detail"], rows)


def _count(check: CheckRow) -> str:
    return f"{check.unexpected_count:,}" if check.unexpected_count is not None else ""


def _detail(data: SiteData, check: CheckRow) -> str:
    """A check's failing sample or why it was skipped, as Markdown text."""
    detail = f"e.g. {check.sample}" if not check.success and check.sample else check.reason or ""
    return md.text(_shown_value(data, detail))


def _sample(data: SiteData, name: str) -> str:
    published = data.state.tables.get(name) if data.state else None
    if not published:
        return "Not built in this environment yet.\n"
    if not published.sample:
        return "The table is empty.\n"
    header = [md.code(c) for c, _ in published.columns]
    rows = md.table(header, [[md.value(_shown_value(data, v)) for v in row] for row in published.sample])
    return f"The first {len(published.sample)} rows by primary key.\n\n" + md.fenced(rows, "{container} convo-sample")


def _shown_value(data: SiteData, value):
    """A stored value as shown: text (file paths, messages) without the project's absolute path."""
    return project_paths_in(value, data.env.root) if isinstance(value, str) else value


# -- data quality -------------------------------------------------------------------------------
def _check_summary(checks: list[CheckRow]) -> Counter:
    counts = Counter(checks=len(checks))
    for c in checks:
        result = _result(c)
        counts[result if result != "**failed**" else c.severity] += 1
    return counts


def _summary_text(s: Counter) -> str:
    return (
        f"{s['checks']} checks, {s['passed']} passed, {s['error']} failed at error level,"
        f" {s['warn']} failed at warn level, {s['skipped']} skipped"
    )


def quality(data: SiteData) -> str:
    out = [
        "# Data quality",
        "",
        "Every table has a suite of checks. A failed **error** check stops a build from publishing;"
        " a failed **warn** check is reported and the build publishes. The suites are stored in"
        " {src}`expectations/` and run by {src}`lib/convo/audit/checks.py` on every `convo build` and `convo check`.",
        "",
    ]
    state = data.state
    if state is None or not state.latest_checks:
        out.append("No checks recorded yet: run `convo build` or `convo check`.")
        return "\n".join(out) + "\n"
    latest = state.latest_checks
    run = state.run(latest[0].run_id)
    when = f", {_recorded(data, run.command)} started {md.timestamp(run.started_at)}" if run else ""
    out += [
        f"## Latest results: run {latest[0].run_id}",
        "",
        f"Run {latest[0].run_id}{when}: {_summary_text(_check_summary(latest))}.",
        "",
    ]
    failed = [c for c in latest if not c.success]
    if failed:
        out += [
            "### Failed checks",
            "",
            md.table(
                ["Suite", "Check", "Severity", "Failing", "Detail"],
                [
                    [
                        _table_link(data, c.table_name),
                        md.text(c.check_name),
                        md.text(c.severity),
                        _count(c),
                        _detail(data, c),
                    ]
                    for c in failed
                ],
            ),
        ]
    out += ["### Results by suite", ""]
    for table in dict.fromkeys(c.table_name for c in latest):
        checks = [c for c in latest if c.table_name == table]
        s = _check_summary(checks)
        out += [
            f"#### {table}",
            "",
            f"{_table_link(data, table)}: {_summary_text(s)}.",
            "",
            md.table(
                ["Check", "Severity", "Result", "Failing", "Detail"],
                [[md.text(c.check_name), md.text(c.severity), _result(c), _count(c), _detail(data, c)] for c in checks],
            ),
        ]
    out += ["## Trend over recent runs", "", _trend(data, state)]
    return "\n".join(out) + "\n"


def _trend(data: SiteData, state: WarehouseState) -> str:
    ids = state.check_run_ids
    chart = (
        "![Checks failed per run](quality-trend.svg)\n\n"
        if len(ids) > 1
        else ("Only one run has recorded checks so far; the chart appears from the second.\n\n")
    )
    rows = []
    for run_id in reversed(ids):
        s = _check_summary([c for c in state.checks if c.run_id == run_id])
        run = state.run(run_id)
        rows.append(
            [
                str(run_id),
                _recorded(data, run.command) if run else "",
                md.timestamp(run.started_at if run else None),
                str(s["checks"]),
                str(s["passed"]),
                str(s["error"]),
                str(s["warn"]),
                str(s["skipped"]),
            ]
        )
    by_suite = []
    for table in sorted({c.table_name for c in state.checks}):
        cells = []
        for run_id in reversed(ids):
            checks = [c for c in state.checks if c.run_id == run_id and c.table_name == table]
            failed = sum(not c.success for c in checks)
            cells.append("-" if not checks else f"**{failed} failed**" if failed else "ok")
        by_suite.append([md.code(table), *cells])
    return (
        chart
        + md.table(
            ["Run", "Command", "Started", "Checks", "Passed", "Failed (error)", "Failed (warn)", "Skipped"], rows
        )
        + "\n### By suite\n\nFailed checks per suite and run (newest run first).\n\n"
        + md.table(["Suite", *(f"run {i}" for i in reversed(ids))], by_suite)
    )


def trend_chart(state: WarehouseState, path: Path) -> None:
    """Failed checks per run, by severity: a static SVG (matplotlib embeds its glyphs, no web font)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = state.check_run_ids
    summaries = [_check_summary([c for c in state.checks if c.run_id == i]) for i in ids]
    x = list(range(len(ids)))
    errors = [s["error"] for s in summaries]
    warns = [s["warn"] for s in summaries]
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.bar(x, errors, color="#c0392b", label="failed, error")
    ax.bar(x, warns, bottom=errors, color="#e6a23c", label="failed, warn")
    ax.set_xticks(x, [str(i) for i in ids])
    ax.set_xlabel("run")
    ax.set_ylabel("failed checks")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_ylim(0, max(1, max(e + w for e, w in zip(errors, warns))) * 1.2)
    ax.legend(loc="upper left", frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    # A fixed hash salt and no date keep the SVG identical for identical data.
    with plt.rc_context({"svg.hashsalt": "convo"}):
        fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


# -- runs and reports ---------------------------------------------------------------------------
def _recorded(data: SiteData, text: str) -> str:
    """A recorded command or message as Markdown text, with the project's paths shown relative to it."""
    return md.text(_shown_value(data, text))


def runs(data: SiteData) -> str:
    out = [
        "# Runs",
        "",
        f"The run history of environment {md.text(data.env.name)}, newest first: every"
        " command that changed or checked it (also shown by `convo runs`). It is kept in the warehouse,"
        f" `{recorded.location('runs')}` and the tables beside it, by {{src}}`lib/convo/engine/state.py`;"
        " failed runs alert as {src}`lib/convo/notify.py` and convo.toml say.",
        "",
    ]
    state = data.state
    if state is None or not state.runs:
        out.append("No runs yet: run `convo build`.")
        return "\n".join(out) + "\n"
    out.append(
        md.table(
            ["Run", "Command", "Status", "Published version", "Code", "Started", "Seconds", "Message"],
            [
                [
                    str(r.run_id),
                    _recorded(data, r.command),
                    f"**{r.status}**" if r.status == "failed" else r.status,
                    str(r.published_version or "-"),
                    md.code(CodeVersion(r.code_commit, r.code_clean).label),
                    md.timestamp(r.started_at),
                    f"{r.seconds:.1f}" if r.seconds else "-",
                    _recorded(data, r.message or ""),
                ]
                for r in state.runs
            ],
        )
    )
    out += [
        "",
        "Code: the git commit the run used, `+dirty` when the checkout had uncommitted changes, `-` when"
        " it was not a git checkout. Each run also records the configuration it used"
        f" (`{recorded.location('runs')}.config`).",
    ]
    if state.run_files or state.run_tables:
        out += ["", f"## The build of the published version (run {state.published_version})", ""]
        builder = state.run(state.published_version)
        if builder is not None and builder.code_commit:
            out += [
                f"Built by commit {md.code(builder.code_commit)}"
                f" ({'clean tree' if builder.code_clean else 'with uncommitted changes'}).",
                "",
            ]
    if state.run_files:
        out += [
            "### Input files",
            "",
            md.table(
                ["File", "Action", "Rows read", "Staged", "Rejected", "Duplicates"],
                [
                    [
                        md.text(data.shown(f.path)),
                        md.text(f.action),
                        *(
                            f"{n:,}" if n is not None else "-"
                            for n in (f.rows_read, f.rows_staged, f.rows_rejected, f.duplicates_removed)
                        ),
                    ]
                    for f in state.run_files
                ],
            ),
            "",
        ]
    if state.run_tables:
        out += [
            "### Tables",
            "",
            md.table(
                ["Table", "Rows", "Inserted", "Retired", "Seconds"],
                [
                    [
                        _table_link(data, t.table_name),
                        f"{t.rows:,}",
                        f"{t.inserted:,}",
                        f"{t.retired:,}",
                        f"{t.seconds:.2f}",
                    ]
                    for t in state.run_tables
                ],
            ),
        ]
    return "\n".join(out) + "\n"


def reports(data: SiteData) -> str:
    out = ["# Reports", ""]
    latest = data.env.reports_dir / data.env.name / "latest"
    if not data.executed_notebooks:
        out.append(
            md.fenced(
                f"No executed notebooks yet for environment {md.text(data.env.name)}: run"
                f" {md.text(f'convo run --env {data.env.name}')}. Its reports appear here after its"
                " next successful run.",
                "{note}",
            )
        )
        return "\n".join(out) + "\n"
    out += [
        f"The notebooks of the latest successful `convo run` of environment {md.text(data.env.name)}"
        f" ({md.text(data.shown(latest.resolve()))}), as executed, with their outputs: they are not run again"
        " to build this site.",
        "",
    ]
    entries = "\n".join(f"{_notebook_title(nb)} <{nb.stem}>" for nb in data.executed_notebooks)
    out.append(md.fenced(f":maxdepth: 1\n\n{entries}", "{toctree}"))
    return "\n".join(out) + "\n"


# -- metrics ------------------------------------------------------------------------------------
def _report_link(data: SiteData, stem: str) -> str:
    """The executed report when the latest run has it, and its source notebook."""
    executed = {nb.stem for nb in data.executed_notebooks}
    shown = f"{{doc}}`{md.text(stem)} </reports/{stem}>`" if stem in executed else md.code(stem)
    return f"{shown} ({{src}}`notebooks/{stem}.py`)"


def _computed_by(data: SiteData, dotted: str) -> str:
    module, function = dotted.rsplit(".", 1)
    return f"{md.code(function)} in {{src}}`{_module_file(data, module)}`"


def metrics_page(data: SiteData) -> str:
    """Every declared metric: its definition, dimensions, and the tables, reports and charts that use it."""
    declared = metrics.declared()
    out = [
        "# Metrics",
        "",
        "Each number the reports and the mart show under one of these names is computed by one expression"
        " (in {src}`lib/convo/models/metrics.py`), declared with its definition in {src}`lib/convo/models/metrics.yml`."
        " A table, report or chart below takes it from there: none computes it its own way.",
        "",
        md.table(
            ["Metric", "Unit", "Dimensions"],
            [
                [
                    f"[{md.text(m.label)}](#metric-{m.name.replace('_', '-')})",
                    md.text(m.unit),
                    md.text(", ".join(m.dimensions)),
                ]
                for m in declared.values()
            ],
        ),
    ]
    for m in declared.values():
        rows = [
            ["Name", md.code(m.name)],
            ["Unit", md.text(m.unit)],
            ["Dimensions", md.text(", ".join(m.dimensions))],
            ["Tables", ", ".join(_table_link(data, t) for t in m.tables) or "-"],
            ["Reports", ", ".join(_report_link(data, r) for r in m.reports) or "-"],
            ["Charts", ", ".join(f"“{md.text(c)}”" for c in m.charts) or "-"],
            ["Computed by", ", ".join(_computed_by(data, c) for c in m.code)],
        ]
        out += [
            "",
            f"(metric-{m.name.replace('_', '-')})=",
            f"## {md.text(m.label)}",
            "",
            md.prose(m.definition),
            "",
            md.table(["", ""], rows),
        ]
    return "\n".join(out) + "\n"


def _notebook_title(path: Path) -> str:
    """The notebook's first heading, else its file name (a page without a title breaks the toctree)."""
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return path.stem


def cli_reference() -> str:
    out = ["# Command-line reference", "", "Generated from `convo --help` and each command's help.", ""]
    for name, parser in links.subcommands().items():
        out += [f"({links.cli_label(name)})=", f"## convo {name}", "", md.fenced(parser.format_help(), "text"), ""]
    return "\n".join(out)


# -- source files -------------------------------------------------------------------------------
_LANGUAGES = {".py": "python", ".toml": "toml", ".yml": "yaml", ".json": "json", ".md": "markdown", ".sh": "bash"}


def _language(path: Path, body: str) -> str:
    """The highlighting language; scripts without a suffix (.ci/run) by their #! line."""
    if path.suffix in _LANGUAGES:
        return _LANGUAGES[path.suffix]
    first = body.split("\n", 1)[0]
    return "bash" if first.startswith("#!") and first.endswith("sh") else "text"


def source_page(repo: Path, path: str) -> str:
    """A file's text, or a folder's list of files (a folder can be large: tests/, expectations/)."""
    target = repo / path
    if target.is_dir():
        rows = [
            [md.code(f.relative_to(repo).as_posix()), f"{f.stat().st_size:,}"] for f in links.listed_files(repo, path)
        ]
        listing = f"# {path}\n\nThe files in this folder when the site was built.\n\n" + md.table(
            ["File", "Bytes"], rows
        )
        readme = target / "README.md"
        # Shown as text: its relative links point into the repository, not into this site.
        return listing + (
            f"\n## README.md\n\n{md.fenced(readme.read_text(encoding='utf-8'), 'markdown')}" if readme.is_file() else ""
        )
    try:
        body = target.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return f"# {path}\n\nA binary file, not shown.\n"
    return f"# {path}\n\n" + md.fenced(body, _language(target, body))
