"""What the pipeline notebooks show: the run record and the published tables, as tables and charts.

The notebooks in `notebooks/` stay thin (parameters, one call per section, a sentence for the
reader); the queries and the presentation live here. Everything shown is deterministic for the
same data, so that nbval can compare a notebook's outputs between runs: rows are sorted, floats
rounded, paths shown relative to the project root, and run ids, timings and load times are kept
out of every table. The run header, which shows them, is the one cell the regression test ignores.

Every query opens the warehouse file read-only and closes it again, so a notebook never holds the
file a later build needs to write.
"""

from __future__ import annotations

import datetime
import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import ibis
import ibis.expr.types as ir
import pandas as pd
from ibis.backends import BaseBackend
from IPython.display import Image, Markdown

from convo import config, escape
from convo.audit.checks import ERROR, WARN
from convo.config import Environment
from convo.engine import state
from convo.engine.state import CheckRecord, Run
from convo.models import metrics
from convo.models.registry import table_docs
from convo.reports import readable, reads
from convo.shown_paths import project_path, project_paths_in

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# Buckets for the time-to-resolution chart, in hours: (label, upper bound).
RESOLUTION_BUCKETS = (("< 1 h", 1), ("1-4 h", 4), ("4-24 h", 24), ("1-3 days", 72), ("> 3 days", float("inf")))
STATUS_COLOURS = {"OPEN": "#d62728", "WAITING FOR CUSTOMER": "#ff7f0e", "CLOSED": "#2ca02c"}


# -- setup ------------------------------------------------------------------------------------
def setup_notebook() -> None:
    """Quiet, stable output: no warnings in cell output, tables shown whole and formatted for reading."""
    from IPython import get_ipython

    warnings.filterwarnings("ignore")
    shell = get_ipython()
    if shell is not None:  # every DataFrame a cell shows goes through convo/readable.py
        formatters = shell.display_formatter.formatters
        formatters["text/html"].for_type(pd.DataFrame, readable.html)
        formatters["text/plain"].for_type(pd.DataFrame, lambda df, printer, cycle: printer.text(readable.text(df)))
    pd.set_option("display.max_rows", 200)
    pd.set_option("display.max_columns", 50)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 100)


def environment(env: str, config_file: str | None = None, warehouse: str | None = None) -> Environment:
    """The environment the notebook's parameters name (as `--env`, `--config`, `--warehouse`)."""
    return config.load(
        env, config=Path(config_file) if config_file else None, warehouse=Path(warehouse) if warehouse else None
    )


def _existing_warehouse(env: Environment) -> str:
    if not env.warehouse.exists():
        raise FileNotFoundError(f"{env.warehouse}: no warehouse here yet; run `convo run` or `convo build` first")
    return str(env.warehouse)


def query(env: Environment, sql: str, params: list | None = None) -> pd.DataFrame:
    """Rows of `sql` on the environment's warehouse, read-only; the file is closed again at once."""
    con = duckdb.connect(_existing_warehouse(env), read_only=True)
    try:
        con.execute("PRAGMA disable_progress_bar")  # SET fails in a Jupyter kernel without ipywidgets
        result = con.execute(sql, params or []).df()
        reads.record(reads.of_sql(con, sql))  # the lineage's notebook edges (convo/reads.py)
        return result
    finally:
        con.close()


def compute(env: Environment, expression: Callable[[BaseBackend], ir.Table]) -> pd.DataFrame:
    """Rows of the Ibis expression `expression(con)` builds on the warehouse, read-only, closed at once.

    The metrics (`convo.models.metrics`) are Ibis expressions, so the reports that show one build it here
    rather than write their own SQL for it.
    """
    con = ibis.duckdb.connect(_existing_warehouse(env), read_only=True)
    try:
        con.raw_sql("PRAGMA disable_progress_bar").fetchall()
        table = expression(con)
        reads.record(reads.of_expression(table))
        return con.to_pandas(table)
    finally:
        con.disconnect()


def _relative(env: Environment, path: str) -> str:
    """A file's path relative to the project root (stable across checkouts, and no path of the machine)."""
    return project_path(path, env.root)


# -- runs -------------------------------------------------------------------------------------


def load_run(env: Environment, run_id: int) -> Run:
    """A run as the history recorded it, with its files, tables and checks."""
    _existing_warehouse(env)
    with state.read_only(env.warehouse) as history:
        run = history.run(run_id)
    if run is None:
        raise ValueError(f"environment {env.name!r} has no run {run_id}")
    return run


def run_or_published_build(env: Environment, run_id: int | None) -> Run:
    """Run `run_id` (`convo run` names its own), or with none the build that wrote the published version."""
    return published_build(env) if run_id is None else load_run(env, int(run_id))


def published_build(env: Environment) -> Run:
    """The build that wrote the published version (a build's version is its run id)."""
    _existing_warehouse(env)
    with state.read_only(env.warehouse) as history:
        version = history.current_version()
    if not version:
        raise ValueError(f"environment {env.name!r} has nothing published yet; run the first notebook or `convo run`")
    return load_run(env, version)


def run_header(env: Environment, run: Run, on: datetime.date) -> Markdown:
    """Which run this report is about: id, command, status, version, run date (not regression-tested)."""
    _existing_warehouse(env)
    with state.read_only(env.warehouse) as history:
        r = history.run_row(run.run_id)
    took = f", {r.seconds:.1f} s" if r.finished_at else ""
    version = f" · published version **{run.published_version}**" if run.published_version else ""
    message = f"\n\n> {_shown_text(env, run.message)}" if run.message else ""
    # A run is "running" while its own reports are made: its build is done, the run is not.
    status = "built, reports in progress" if run.status == "running" else run.status
    return Markdown(
        f"Run **{run.run_id}** of environment {escape.markdown(env.name)} ({_shown_text(env, run.command)}):"
        f" **{escape.markdown(status)}**{version} · started {r.started_at:%Y-%m-%d %H:%M:%S} UTC{took}"
        f" · run date {on} · warehouse {escape.markdown(_relative(env, env.warehouse))}{message}"
    )


def version_header(env: Environment, run: Run, on: datetime.date) -> Markdown:
    """Which published version a report describes and the build that wrote it (not regression-tested).

    Only what stays true of that version once it is published: the run that built it goes on (its
    reports, its end), and a report of the version must read the same whenever it is made, so
    that an unchanged report can be reused (`convo.reports.reuse`)."""
    _existing_warehouse(env)
    with state.read_only(env.warehouse) as history:
        started = history.run_row(run.run_id).started_at
    return Markdown(
        f"Published version **{run.published_version}** of environment {escape.markdown(env.name)}, built by run"
        f" **{run.run_id}** ({_shown_text(env, run.command)}) started {started:%Y-%m-%d %H:%M:%S} UTC"
        f" · run date {on} · warehouse {escape.markdown(_relative(env, env.warehouse))}"
    )


def _shown_text(env: Environment, text: str) -> str:
    """A recorded command or message as Markdown text, the project's paths relative to it."""
    return escape.markdown(project_paths_in(text, env.root))


def table_changes(run: Run, *layers: str) -> pd.DataFrame | Markdown:
    """Rows of each table of `layers` after the run, and how many rows it inserted and retired."""
    docs = table_docs()
    rows = [
        {
            "table": t.table_name,
            "layer": docs[t.table_name].layer,
            "rows": t.rows,
            "inserted": t.inserted,
            "retired": t.retired,
        }
        for t in run.tables
        if docs[t.table_name].layer in layers
    ]
    if not rows:
        return Markdown(f"Run {run.run_id} changed no {' or '.join(layers)} table.")
    return pd.DataFrame(rows).sort_values(["layer", "table"], ignore_index=True)


def as_of(env: Environment, run_date: str | None) -> datetime.date:
    """The run date, or when none is given, the day of the newest staged event (the data's own date)."""
    if run_date:
        return datetime.date.fromisoformat(str(run_date))
    return pd.Timestamp(query(env, "SELECT max(event_at) AS t FROM stg_conversation_events").t[0]).date()


# -- headlines: the answer first, in sentences -------------------------------------------------
def headline_build(run: Run) -> Markdown:
    """What the build read and kept, in one sentence."""
    read = [f for f in run.files if f.action == "ingested"]
    if not read:
        return Markdown(f"**In short:** this run read no new file ({len(run.files)} already loaded): nothing changed.")
    total = lambda attr: sum(getattr(f, attr) or 0 for f in read)  # noqa: E731
    return Markdown(
        f"**In short:** this run read **{len(read):,}** new file(s), **{total('rows_read'):,}** rows:"
        f" **{total('rows_staged'):,}** staged, **{total('rows_rejected'):,}** rejected (listed below with their"
        f" reasons) and **{total('duplicates_removed'):,}** exact duplicates kept once."
    )


def headline_dimensions(env: Environment) -> Markdown:
    """How many users, agents and tags the warehouse knows, and the calendar it covers."""
    r = query(
        env,
        "SELECT (SELECT count(*) FROM dim_user) AS users, (SELECT count(*) FROM dim_agent) AS agents,"
        " (SELECT count(*) FROM dim_tag) AS tags,"
        " (SELECT count(*) FROM dim_tag WHERE category = 'unmapped') AS unmapped,"
        " (SELECT min(date) FROM dim_date) AS first, (SELECT max(date) FROM dim_date) AS last",
    ).iloc[0]
    return Markdown(
        f"**In short:** **{r.users:,}** customers, **{r.agents:,}** agents and **{r.tags:,}** tags"
        f" ({r.unmapped:,} without a contact reason), over a calendar from"
        f" {pd.Timestamp(r['first']):%Y-%m-%d} to {pd.Timestamp(r['last']):%Y-%m-%d}."
    )


def headline_facts(env: Environment, on: datetime.date) -> Markdown:
    """The period's conversations, resolution, reopening and backlog, in a few sentences."""
    first, last = query(env, "SELECT min(opened_at) AS a, max(opened_at) AS b FROM fact_conversation_lifecycle").iloc[0]
    r = resolution(env).value
    backlog = backlog_on(env, on).data
    hours = (
        f"half of the closed ones within **{r.median_hours_to_resolve:,} h**, nine in ten within"
        f" **{r.p90_hours_to_resolve:,} h**"
        if pd.notna(r.median_hours_to_resolve)
        else "none closed yet"
    )
    reopened = (
        f"Of the closed conversations, **{r.reopen_rate:.0%}** were reopened at least once"
        if pd.notna(r.reopen_rate)
        else "No conversation is closed yet, so there is no reopen rate"
    )
    return Markdown(
        f"**In short:** from {pd.Timestamp(first):%Y-%m-%d} to {pd.Timestamp(last):%Y-%m-%d},"
        f" **{r.conversations:,}** conversations opened and **{r.closed:,}** are closed: {hours}."
        f" {reopened}. {backlog}"
    )


def headline_quality(run: Run) -> Markdown:
    """Did the build's checks pass, in one sentence."""
    df = _check_rows(run)
    failed = df[df.result == "FAILED"]
    errors, warns = (failed.severity == ERROR).sum(), (failed.severity == WARN).sum()
    verdict = (
        "every check that ran passed"
        if failed.empty
        else (f"**{errors}** error-level and **{warns}** warning-level check(s) failed")
    )
    return Markdown(
        f"**In short:** the build ran **{len(df) - (df.result == 'skipped').sum():,}** checks before"
        f" publishing and {verdict}; {(df.result == 'skipped').sum():,} were skipped (see why below)."
    )


# -- charts -----------------------------------------------------------------------------------
def _chart(
    draw: Callable[[Axes], None], *, title: str, xlabel: str, ylabel: str, size=(9, 3.6), grid: str = "y"
) -> Image:
    """A static PNG (no pyplot state, so it is shown once, in the notebook and its HTML copy)."""
    from matplotlib.figure import Figure  # about a second to import: only in a notebook that draws

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    ax = fig.subplots()
    draw(ax)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(axis=grid, alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return Image(buf.getvalue(), format="png", alt=title)


def _stacked_bars(ax: Axes, table: pd.DataFrame, colours: dict | None = None, width: float = 0.8) -> None:
    """One bar per index value, one coloured segment per column."""
    bottom = pd.Series(0, index=table.index)
    for column in table.columns:
        ax.bar(
            table.index,
            table[column],
            width,
            bottom=bottom,
            label=escape.matplotlib(column),
            color=(colours or {}).get(column),
        )
        bottom += table[column]
    ax.legend(fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1, 1))


# -- 1. ingest and stage ----------------------------------------------------------------------
def files_read(env: Environment, run: Run) -> pd.DataFrame:
    """Each input file of the run: what happened to it and where every row went."""
    df = pd.DataFrame(
        [
            {
                "file": _relative(env, f.path),
                "action": f.action,
                "rows read": f.rows_read,
                "staged": f.rows_staged,
                "rejected": f.rows_rejected,
                "duplicates removed": f.duplicates_removed,
            }
            for f in run.files
        ],
        columns=["file", "action", "rows read", "staged", "rejected", "duplicates removed"],
    )
    return df.sort_values("file", ignore_index=True)


def _ingested_ids(run: Run) -> list[int]:
    return sorted(f.file_id for f in run.files if f.action == "ingested")


def rejected_rows(env: Environment, run: Run) -> pd.DataFrame | Markdown:
    """The rows this run could not stage, with the raw fields and every reason."""
    ids = _ingested_ids(run)
    if not ids:
        return Markdown("This run read no new file, so it rejected nothing.")
    df = query(
        env,
        "SELECT source_file AS file, source_line AS line, reason, event_timestamp, conversation_id, user_id,"
        " agent_id, event, event_value, raw_line FROM rejected_conversation_events"
        " WHERE list_contains(?, file_id) ORDER BY file, line",
        [ids],
    )
    if df.empty:
        return Markdown("Every row of this run's files was staged: nothing rejected.")
    df["file"] = df.file.map(lambda p: _relative(env, p))
    return df.fillna("")


def _staged_by_this_run(env: Environment, run: Run, select: str, group: str | None = None) -> pd.DataFrame:
    """An aggregate over the events first read from this run's files."""
    grouping = f" GROUP BY {group} ORDER BY {group}" if group else ""
    return query(
        env,
        f"SELECT {select} FROM stg_conversation_events WHERE list_contains(?, file_seq){grouping}",
        [_ingested_ids(run)],
    )


def staged_by_event(env: Environment, run: Run) -> pd.DataFrame | Markdown:
    """Events this run staged, by event type: how many, in how many conversations, from when to when."""
    if not _ingested_ids(run):
        return Markdown("This run read no new file, so it staged nothing.")
    measures = (
        "count(*) AS events, count(DISTINCT conversation_id) AS conversations,"
        " min(event_at) AS first_event_at, max(event_at) AS last_event_at"
    )
    by_event = _staged_by_this_run(env, run, f"event, {measures}", "event")
    total = _staged_by_this_run(env, run, f"'(all)' AS event, {measures}")
    return pd.concat([by_event, total], ignore_index=True)


def chart_staged_per_day(env: Environment, run: Run) -> Image | Markdown:
    """Events this run staged per day, by event type."""
    if not _ingested_ids(run):
        return Markdown("No chart: this run staged nothing.")
    df = _staged_by_this_run(env, run, "event_at::DATE AS day, event, count(*) AS events", "day, event")
    table = df.pivot(index="day", columns="event", values="events").fillna(0)
    return _chart(
        lambda ax: _stacked_bars(ax, table),
        title="Events staged by this run, per day and event type",
        xlabel="event date (UTC)",
        ylabel="events",
    )


# -- 2. dimensions ----------------------------------------------------------------------------
def date_dimension(env: Environment) -> pd.DataFrame:
    """The calendar's range, and whether it covers every event date."""
    return query(
        env,
        "SELECT min(date) AS first_date, max(date) AS last_date, count(*) AS days,"
        " (SELECT count(*) FROM fact_conversation_events AS e ANTI JOIN dim_date AS d USING (date_key))"
        " AS events_outside_calendar FROM dim_date",
    )


def users(env: Environment) -> pd.DataFrame:
    """How many users have how many conversations (profile attributes have no source yet)."""
    return query(
        env,
        "SELECT conversation_count AS conversations, count(*) AS users,"
        " min(first_seen_at) AS first_seen_at, max(last_seen_at) AS last_seen_at"
        " FROM dim_user GROUP BY conversation_count ORDER BY conversation_count",
    )


def agents(env: Environment) -> pd.DataFrame:
    """Every agent, busiest first: conversations handled and when they were first and last seen."""
    return query(
        env,
        "SELECT id AS agent_id, conversations_handled, first_seen_at, last_seen_at FROM dim_agent"
        " ORDER BY conversations_handled DESC, id",
    )


def chart_agent_workload(env: Environment) -> Image:
    """Conversations handled per agent."""
    df = agents(env).iloc[::-1]  # busiest at the top of a horizontal bar chart
    return _chart(
        lambda ax: ax.barh(df.agent_id.astype(str), df.conversations_handled, color="#1f77b4"),
        title="Conversations handled per agent",
        xlabel="conversations",
        ylabel="agent id",
        grid="x",
    )


def tags(env: Environment) -> pd.DataFrame:
    """Each tag's contact reason and category, and how many conversations carry it."""
    return query(
        env,
        "SELECT t.category, t.tag, t.contact_reason, count(f.conversation_id) AS conversations"
        " FROM dim_tag AS t LEFT JOIN fact_conversation_tags AS f USING (tag)"
        " GROUP BY ALL ORDER BY t.category, t.tag",
    )


def unmapped_tags(env: Environment) -> Markdown:
    """Tags seen in events that the contact-reason seed does not map yet."""
    df = query(env, "SELECT tag FROM dim_tag WHERE category = 'unmapped' ORDER BY tag")
    if df.empty:
        return Markdown("Every tag seen in the events has a contact reason.")
    names = ", ".join(escape.markdown(t) for t in df.tag)
    return Markdown(
        f"**{len(df)} tag(s) without a contact reason:** {names}. "
        "Add them to `seeds/tag_contact_reasons.csv` to give them a reason and category."
    )


# -- 3. facts ---------------------------------------------------------------------------------
def conversation_status(env: Environment) -> pd.DataFrame:
    """Conversations by current status, with their share."""
    return query(
        env,
        "SELECT status, count(*) AS conversations, round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS pct"
        " FROM fact_conversation_lifecycle GROUP BY status ORDER BY status",
    )


# Decimals each measure of `resolution` is shown with (counts stay integers).
RESOLUTION_DECIMALS = {
    "median_hours_to_resolve": 2,
    "p90_hours_to_resolve": 2,
    "median_first_response_minutes": 2,
    "p90_first_response_minutes": 2,
    "reopen_rate": 3,
    "avg_messages": 2,
}


def resolution(env: Environment) -> pd.DataFrame:
    """How fast conversations are answered and resolved, and how often reopened: one measure a row."""

    def measures(con: BaseBackend) -> ir.Table:
        c = metrics.conversation_rows(con.table("fact_conversation_lifecycle"))
        return c.aggregate(**metrics.resolution_measures(c), avg_messages=c.interaction_between_customer.mean())

    row = compute(env, measures).to_dict("records")[0]  # per column, so counts stay integers
    values = {
        m: round(v, RESOLUTION_DECIMALS[m]) if m in RESOLUTION_DECIMALS and pd.notna(v) else v for m, v in row.items()
    }
    table = pd.DataFrame({"value": pd.Series(values, dtype=object)}).rename_axis("measure")
    return readable.because(table, value="none closed or answered yet")


def chart_opened_per_week(env: Environment) -> Image:
    """Conversations opened per week, coloured by their current status."""

    def per_week(con: BaseBackend) -> ir.Table:
        c = metrics.conversation_rows(con.table("fact_conversation_lifecycle"))
        c = c.mutate(week=c.opened_at.truncate("W").cast("date"))
        return (
            c.group_by("week", "status")
            .aggregate(conversations=metrics.conversations_opened(c))
            .order_by("week", "status")
        )

    df = compute(env, per_week)
    table = df.pivot(index="week", columns="status", values="conversations").fillna(0)
    per_week_total = table.sum(axis=1)
    busiest = per_week_total.idxmax()
    not_closed = int(table.drop(columns="CLOSED", errors="ignore").to_numpy().sum())
    finding = (
        f"Busiest week: {pd.Timestamp(busiest):%Y-%m-%d}, {int(per_week_total[busiest]):,} opened;"
        f" {not_closed:,} of {int(per_week_total.sum()):,} not closed yet"
    )
    # One category per week, labelled with its Monday: every tick falls on the week it names.
    table.index = [pd.Timestamp(w).strftime("%Y-%m-%d") for w in table.index]

    def draw(ax: Axes) -> None:
        _stacked_bars(ax, table, STATUS_COLOURS)
        ax.tick_params(axis="x", rotation=45)

    return _chart(
        draw,
        title=f"{finding}\nConversations opened per week, by current status",
        xlabel="week starting (Monday)",
        ylabel="conversations",
    )


def resolution_buckets(env: Environment) -> pd.DataFrame:
    """Closed conversations by time to resolution."""
    hours = query(env, "SELECT hours_to_resolve AS h FROM fact_conversation_lifecycle WHERE closed_at IS NOT NULL").h
    labels = [label for label, _ in RESOLUTION_BUCKETS]
    bounds = [0, *(upper for _, upper in RESOLUTION_BUCKETS)]
    counts = pd.cut(hours, bounds, labels=labels, right=False).value_counts().reindex(labels, fill_value=0)
    return counts.rename_axis("time to resolve").reset_index(name="conversations")


def chart_resolution(env: Environment) -> Image:
    """Closed conversations by time to resolution."""
    df = resolution_buckets(env)
    return _chart(
        lambda ax: ax.bar(df["time to resolve"], df.conversations, color="#2ca02c"),
        title="Closed conversations by time to resolution",
        xlabel="time from opened to closed",
        ylabel="conversations",
        size=(7, 3.2),
    )


def open_backlog(env: Environment, on: datetime.date) -> pd.DataFrame | Markdown:
    """Conversations not closed, oldest first, with their age in days on the run date."""
    df = query(
        env,
        "SELECT id AS conversation_id, status, opened_at, datediff('day', opened_at::DATE, ?::DATE) AS age_days,"
        " number_tags_assigned AS tags FROM fact_conversation_lifecycle WHERE status <> 'CLOSED'"
        " ORDER BY opened_at, id",
        [on],
    )
    return df if not df.empty else Markdown(f"No open conversation on {on}.")


def measured_on(run_date: str | None, on: datetime.date) -> Markdown:
    """Which day ages and freshness are measured at, and why that day."""
    if run_date:
        return Markdown(f"Ages and freshness are measured at the end of the run date, {on} (UTC).")
    return Markdown(
        f"This run has no run date, so ages and freshness are measured at the end of the data's period:"
        f" {on}, the day of the newest event (UTC)."
    )


def backlog_on(env: Environment, on: datetime.date) -> Markdown:
    """The backlog metric at the end of the run date: conversations open or waiting for the customer."""

    def on_day(con: BaseBackend) -> ir.Table:
        days = con.table("dim_date").filter(ibis._.date == on)
        return metrics.backlog(con.table("fact_conversation_events"), days)

    df = compute(env, on_day)
    if df.empty:
        return Markdown(f"No backlog figure: {on} is outside the calendar (dim_date).")
    return Markdown(
        f"Backlog at the end of {on} (UTC): **{int(df.backlog[0])}** conversation(s) open or waiting for the customer."
    )


def top_tags(env: Environment) -> pd.DataFrame:
    """Tags by conversations carrying them, with the contact reason they stand for and their share."""

    def per_tag(con: BaseBackend) -> ir.Table:
        tags = con.table("fact_conversation_tags")
        everyone = metrics.conversation_rows(con.table("fact_conversation_lifecycle"))
        counts = tags.group_by("tag").aggregate(conversations=metrics.conversations_opened(tags))
        rows = counts.join(con.table("dim_tag").select("tag", "contact_reason", "category"), "tag")
        share = metrics.share_of_contacts(rows.conversations, metrics.conversations_opened(everyone).as_scalar())
        return rows.select(
            "tag", "contact_reason", "category", "conversations", pct_of_conversations=(share * 100).round(1)
        ).order_by(ibis.desc("conversations"), "tag")

    return compute(env, per_tag)


# What an empty value of a sampled table means, shown in its place.
EMPTY_MEANS = {
    "fact_conversation_lifecycle": {
        "closed_at": "not closed",
        "closed_date_key": "not closed",
        "hours_to_resolve": "not closed",
        "first_response_minutes": "no agent reply",
    }
}


def sample(env: Environment, table: str, n: int = 5) -> pd.DataFrame:
    """The first `n` rows of a published table by its primary key (load-time columns left out)."""
    doc = table_docs()[table]
    columns = ", ".join(f'"{c.name}"' for c in doc.columns if not c.load_time)
    key = ", ".join(f'"{k}"' for k in doc.primary_key)
    rows = query(env, f'SELECT {columns} FROM "{table}" ORDER BY {key} LIMIT {int(n)}').round(2)
    return readable.because(rows, **EMPTY_MEANS.get(table, {}))


# -- 4. data quality --------------------------------------------------------------------------
OUTCOMES = ("FAILED", "skipped", "passed")  # the order checks are listed in


def _outcome(c: CheckRecord) -> str:
    if c.result.get("skipped"):  # a check that lacked a setting or a baseline (see convo.audit.checks)
        return "skipped"
    return "passed" if c.success else "FAILED"


def _check_rows(run: Run) -> pd.DataFrame:
    df = pd.DataFrame(
        [
            {
                "table": c.table_name,
                "check": c.check_name,
                "severity": c.severity,
                "result": _outcome(c),
                "failing rows": "" if c.unexpected_count is None else int(c.unexpected_count),
                "sample": c.sample or "",
                "why": c.reason or "",
            }
            for c in run.checks
        ],
        columns=["table", "check", "severity", "result", "failing rows", "sample", "why"],
    )
    rank = df.result.map(OUTCOMES.index)
    return df.assign(_rank=rank).sort_values(["_rank", "table", "check"]).drop(columns="_rank").reset_index(drop=True)


def checks(run: Run) -> pd.DataFrame:
    """Every check the build ran before publishing, failures first (why each exists: see failed_checks)."""
    return _check_rows(run).drop(columns="why")


def skipped_checks(run: Run) -> pd.DataFrame | Markdown:
    """Checks that did not run, grouped by why (a setting or a baseline they need is missing)."""
    df = _check_rows(run)
    df = df[df.result == "skipped"]
    if df.empty:
        return Markdown("No check was skipped.")
    return (
        df.groupby("why")
        .agg(checks=("check", "size"), tables=("table", lambda t: ", ".join(sorted(set(t)))))
        .reset_index()
        .sort_values("why", ignore_index=True)
    )


def check_summary(run: Run) -> pd.DataFrame:
    """Checks per table: how many passed, failed (by severity) and were skipped."""
    df = _check_rows(run)
    columns = ["passed", f"failed {ERROR}", f"failed {WARN}", "skipped"]
    if df.empty:
        return pd.DataFrame(columns=["table", "checks", *columns])
    outcome = df.result.mask(df.result == "FAILED", "failed " + df.severity)
    counts = pd.crosstab(df.table, outcome).reindex(columns=columns, fill_value=0)
    counts.insert(0, "checks", counts.sum(axis=1))
    return counts.rename_axis(columns=None).reset_index()


def failed_checks(run: Run) -> pd.DataFrame | Markdown:
    """The checks that failed, with why each matters; an error-level failure stops publishing."""
    df = _check_rows(run)
    failed = df[df.result == "FAILED"].reset_index(drop=True)
    if df.empty:
        return Markdown("No check ran in this run.")
    if failed.empty:
        return Markdown(f"**No check failed** of {len(df)} ({(df.result == 'skipped').sum()} skipped).")
    return failed


def reconciliation(env: Environment) -> pd.DataFrame:
    """Per ingested file: rows read = staged + rejected + duplicates removed (nothing dropped silently)."""
    df = query(
        env,
        "SELECT file_id, path AS file, rows_read, rows_staged, rows_rejected, duplicates_removed,"
        " rows_read = rows_staged + rows_rejected + duplicates_removed AS balanced"
        " FROM ingested_files ORDER BY file_id",
    )
    df["file"] = df.file.map(lambda p: _relative(env, p))
    return df


def rejected_by_reason(env: Environment) -> pd.DataFrame:
    """Every rejected row in the warehouse, counted by file and reason."""
    df = query(
        env,
        "SELECT source_file AS file, reason, count(*) AS rows FROM rejected_conversation_events"
        " GROUP BY ALL ORDER BY file, reason",
    )
    df["file"] = df.file.map(lambda p: _relative(env, p))
    return df


def freshness(env: Environment, on: datetime.date, stale_after_days: int) -> Markdown:
    """How far the newest event is behind the run date."""
    newest = query(env, "SELECT max(event_at) AS t FROM stg_conversation_events").t[0]
    behind = (on - newest.date()).days
    verdict = (
        f"**Stale:** more than {stale_after_days} days behind"
        if behind > stale_after_days
        else f"Fresh: within {stale_after_days} days"
    )
    return Markdown(
        f"Newest event: {newest:%Y-%m-%d %H:%M:%S} UTC, {behind} day(s) before {on}, the day it is"
        f" measured at. {verdict}."
    )
