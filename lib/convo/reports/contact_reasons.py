"""Contact-reason analysis: why customers contact support, and how that changes over time.

Everything is read as aggregates computed inside DuckDB from the published tables
(`int_conversation_tags`, `fact_conversation_lifecycle`, `dim_tag`, `dim_date`); no event table is
loaded into pandas. Every metric shown (conversations opened and closed, their share, resolution
and first-response percentiles, the reopen rate) is the declared expression of `convo.models.metrics`.
A conversation with several tags counts once under each of its tags, so per-reason counts do not add up to the
number of conversations, and shares of one period can add up to more than 100 %.
"""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import pandas as pd
from ibis.backends import BaseBackend
from IPython.display import Image, Markdown
from matplotlib import colormaps
from matplotlib.figure import Figure

from convo import escape
from convo.config import Environment
from convo.models import metrics
from convo.reports import readable
from convo.reports.reporting import compute, query

GRAINS = ("day", "week", "month")
_TRUNCATE = {"day": "D", "week": "W", "month": "M"}  # Ibis's unit for each grain


@dataclass(frozen=True)
class Selection:
    """What the report covers: a date range of conversation openings, a grain, a filter."""

    start: datetime.date
    end: datetime.date
    grain: str
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def __post_init__(self):
        if self.grain not in GRAINS:
            raise ValueError(f"grain must be one of {', '.join(GRAINS)}, not {self.grain!r}")
        if self.end < self.start:
            raise ValueError(f"the range ends ({self.end}) before it starts ({self.start})")

    def where(self, tag: str, category: str) -> tuple[str, list]:
        """SQL filter (" AND ...") on a tag column and its category column, and its parameters."""
        clauses, params = [], []
        if self.categories:
            clauses.append(f"{category} IN ({', '.join('?' * len(self.categories))})")
            params += list(self.categories)
        if self.tags:
            clauses.append(f"{tag} IN ({', '.join('?' * len(self.tags))})")
            params += list(self.tags)
        return (" AND " + " AND ".join(clauses) if clauses else ""), params

    def keeps(self, tag: ir.StringValue, category: ir.StringValue) -> ir.BooleanValue:
        """The same filter as `where`, as an Ibis predicate."""
        kept = ibis.literal(True)
        if self.categories:
            kept &= category.isin(self.categories)
        if self.tags:
            kept &= tag.isin(self.tags)
        return kept


def selection(
    env: Environment,
    start: str | None,
    end: str | None,
    grain: str,
    categories: list[str] | None = None,
    tags: list[str] | None = None,
) -> Selection:
    """The notebook's parameters as a Selection; an open end means the data's first or last day."""
    first, last = query(
        env, "SELECT min(opened_at)::DATE AS a, max(opened_at)::DATE AS b FROM fact_conversation_lifecycle"
    ).iloc[0]
    parse = datetime.date.fromisoformat
    first, last = pd.Timestamp(first).date(), pd.Timestamp(last).date()  # dates, not midnight timestamps
    return Selection(
        parse(start) if start else first, parse(end) if end else last, grain, tuple(categories or ()), tuple(tags or ())
    )


def _opened_in_range(con: BaseBackend, rows: ir.Table, s: Selection) -> ir.Table:
    """`rows` (with `opened_date_key`) opened in the selection's range, with the `period` they opened in."""
    dates = con.table("dim_date").select("date_key", "date")
    rows = rows.join(dates, rows.opened_date_key == dates.date_key)
    rows = rows.filter(rows.date.between(s.start, s.end))
    return rows.mutate(period=rows.date.truncate(_TRUNCATE[s.grain]))


def _tagged_in_range(con: BaseBackend, s: Selection) -> ir.Table:
    """The (conversation, tag) rows opened in the range that the selection keeps, with the tag's reason."""
    reasons = con.table("dim_tag").select("tag", "contact_reason", "category")
    tagged = con.table("int_conversation_tags").drop("updated_at").join(reasons, "tag")
    tagged = tagged.filter(s.keeps(tagged.tag, tagged.category))
    return _opened_in_range(con, tagged, s)


def volume(env: Environment, s: Selection) -> pd.DataFrame:
    """Conversations opened per period and reason, and their share of all conversations opened."""

    def per_period(con: BaseBackend) -> ir.Table:
        tagged = _tagged_in_range(con, s)
        per_reason = tagged.group_by("period", "tag", "contact_reason", "category").aggregate(
            conversations=metrics.conversations_opened(tagged)
        )
        everyone = _opened_in_range(con, metrics.conversation_rows(con.table("fact_conversation_lifecycle")), s)
        totals = everyone.group_by("period").aggregate(all_conversations=metrics.conversations_opened(everyone))
        rows = per_reason.join(totals, "period")
        return rows.select(
            "period",
            "tag",
            "contact_reason",
            "category",
            "conversations",
            "all_conversations",
            share=metrics.share_of_contacts(rows.conversations, rows.all_conversations).round(4),
        ).order_by("period", ibis.desc("conversations"), "tag")

    return readable.percent(compute(env, per_period), "share")


def movers(vol: pd.DataFrame) -> pd.DataFrame:
    """Each reason's change from the previous period to the last one, biggest moves first."""
    periods = sorted(vol.period.unique())
    if len(periods) < 2:
        return pd.DataFrame(columns=["tag", "previous", "last", "change", "relative_change"])
    previous, last = periods[-2], periods[-1]
    wide = vol.pivot_table(index="tag", columns="period", values="conversations", aggfunc="sum", fill_value=0)
    moves = pd.DataFrame({"previous": wide[previous].astype(int), "last": wide[last].astype(int)})
    moves["change"] = moves["last"] - moves["previous"]
    moves["relative_change"] = (moves["change"] / moves["previous"].where(moves["previous"] > 0)).round(3)
    moves = moves[moves.change != 0].reset_index().assign(size=lambda m: m.change.abs())
    moves = moves.sort_values(["size", "tag"], ascending=[False, True]).drop(columns="size").reset_index(drop=True)
    return readable.percent(
        readable.because(moves, relative_change="new: none in the period before"), "relative_change"
    )


# Decimals each measure of `resolution` is shown with.
RESOLUTION_DECIMALS = {
    "median_hours_to_resolve": 2,
    "p90_hours_to_resolve": 2,
    "median_first_response_minutes": 1,
    "p90_first_response_minutes": 1,
    "reopen_rate": 3,
}


def resolution(env: Environment, s: Selection) -> pd.DataFrame:
    """Per reason, over conversations opened in the range: how fast and how well they were resolved."""

    def per_reason(con: BaseBackend) -> ir.Table:
        t = _tagged_in_range(con, s)
        return (
            t.group_by("tag", "contact_reason")
            .aggregate(**metrics.resolution_measures(t))
            .order_by(ibis.desc("conversations"), "tag")
        )

    res = compute(env, per_reason).round(RESOLUTION_DECIMALS)
    return readable.percent(
        readable.because(
            res,
            median_hours_to_resolve="none closed",
            p90_hours_to_resolve="none closed",
            median_first_response_minutes="no agent reply",
            p90_first_response_minutes="no agent reply",
            reopen_rate="none closed",
        ),
        "reopen_rate",
    )


def co_occurrence(env: Environment, s: Selection) -> pd.DataFrame:
    """Pairs of reasons found together in one conversation, most frequent first."""
    where_a, params_a = s.where("a.tag", "ca.category")
    where_b, params_b = s.where("b.tag", "cb.category")
    return query(
        env,
        f"""SELECT a.tag AS reason, b.tag AS together_with, count(*) AS conversations
            FROM int_conversation_tags a JOIN int_conversation_tags b
              ON a.conversation_id = b.conversation_id AND a.tag < b.tag
            JOIN dim_tag ca ON ca.tag = a.tag JOIN dim_tag cb ON cb.tag = b.tag
            JOIN dim_date d ON d.date_key = a.opened_date_key
            WHERE d.date BETWEEN ? AND ?{where_a}{where_b}
            GROUP BY ALL ORDER BY conversations DESC, reason, together_with""",
        [s.start, s.end, *params_a, *params_b],
    )


def colours(env: Environment) -> dict[str, tuple]:
    """One colour per tag, fixed by the tag's place in dim_tag, so every chart agrees."""
    tags = query(env, "SELECT tag FROM dim_tag ORDER BY category, tag").tag.tolist()
    palette = colormaps["tab20"].colors
    return {tag: palette[i % len(palette)] for i, tag in enumerate(tags)}


def _png(fig: Figure, alt: str) -> Image:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return Image(buf.getvalue(), format="png", alt=alt)


def chart_volume(vol: pd.DataFrame, s: Selection, palette: dict) -> Image | Markdown:
    if vol.empty:
        return Markdown("_No tagged conversation opened in this range._")
    wide = vol.pivot_table(index="period", columns="tag", values="conversations", aggfunc="sum", fill_value=0)
    wide = wide[wide.sum().sort_values(ascending=False).index]
    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    ax = fig.subplots()
    labels = [pd.Timestamp(p).strftime("%Y-%m-%d") for p in wide.index]
    bottom = pd.Series(0, index=wide.index)
    for tag in wide.columns:
        ax.bar(labels, wide[tag], bottom=bottom, label=escape.matplotlib(tag), color=palette.get(tag))
        bottom += wide[tag]
    top = wide.columns[0]
    finding = (
        f"Most frequent reason: {escape.matplotlib(top)}, {int(wide[top].sum()):,} conversations"
        f" from {s.start} to {s.end}"
    )
    ax.set(
        title=f"{finding}\nConversations opened per {s.grain}, by contact reason (a conversation counts once per tag)",
        xlabel=f"{s.grain} starting",
        ylabel="conversations",
    )
    ax.tick_params(axis="x", rotation=45)
    ax.legend(title="reason (tag)", fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    return _png(fig, "conversations per period and reason")


def chart_share(vol: pd.DataFrame, s: Selection, palette: dict) -> Image | Markdown:
    if vol.empty:
        return Markdown("_No tagged conversation opened in this range._")
    wide = vol.pivot_table(index="period", columns="tag", values="share", aggfunc="sum", fill_value=0) * 100
    top = wide.sum().sort_values(ascending=False).index[:8]
    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    ax = fig.subplots()
    labels = [pd.Timestamp(p).strftime("%Y-%m-%d") for p in wide.index]
    for tag in top:
        ax.plot(labels, wide[tag], marker="o", label=escape.matplotlib(tag), color=palette.get(tag))
    last = wide.iloc[-1].sort_values(ascending=False)
    finding = (
        f"In the {s.grain} of {labels[-1]}, {escape.matplotlib(last.index[0])} had the largest share:"
        f" {last.iloc[0]:.0f} % of new conversations"
    )
    ax.set(
        title=f"{finding}\nShare of the {s.grain}'s new conversations carrying each reason (top 8 reasons)",
        xlabel=f"{s.grain} starting",
        ylabel="share of conversations (%)",
    )
    ax.tick_params(axis="x", rotation=45)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="reason (tag)", fontsize="small", frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    return _png(fig, "share of conversations per reason")


def chart_resolution(res: pd.DataFrame, palette: dict) -> Image | Markdown:
    closed = res[res.closed > 0]
    if closed.empty:
        return Markdown("_No conversation of these reasons was closed._")
    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    ax = fig.subplots()
    reasons = closed.tag.map(escape.matplotlib)  # the y-axis categories are the tick labels
    ax.barh(reasons, closed.median_hours_to_resolve, color=[palette.get(t) for t in closed.tag], label="median")
    ax.scatter(closed.p90_hours_to_resolve, reasons, color="black", marker="|", s=200, label="90th percentile")
    ax.invert_yaxis()
    slowest = closed.sort_values(["median_hours_to_resolve", "tag"], ascending=[False, True]).iloc[0]
    finding = (
        f"Slowest to resolve: {escape.matplotlib(slowest.tag)}, median {slowest.median_hours_to_resolve:,} h,"
        f" 90th percentile {slowest.p90_hours_to_resolve:,} h"
    )
    ax.set(
        title=f"{finding}\nHours to resolve per contact reason (closed conversations)",
        xlabel="hours to resolve",
        ylabel="reason (tag)",
    )
    ax.legend(frameon=False, loc="lower right")
    return _png(fig, "hours to resolve per reason")


def summary(s: Selection, vol: pd.DataFrame, moves: pd.DataFrame, res: pd.DataFrame) -> Markdown:
    """The answer in words, generated from the numbers above."""
    if vol.empty:
        return Markdown(f"No tagged conversation opened between {s.start} and {s.end}.")
    totals = vol.groupby(["tag", "contact_reason"], as_index=False).conversations.sum()
    totals = totals.sort_values(["conversations", "tag"], ascending=[False, True])
    conversations = int(vol.drop_duplicates("period").all_conversations.sum())
    top = ", ".join(
        f"**{escape.markdown(r.contact_reason)}** ({escape.markdown(r.tag)},"
        f" {r.conversations} conversations,"
        f" {r.conversations / conversations:.0%})"
        for r in totals.head(3).itertuples()
    )
    lines = [
        f"Between {s.start} and {s.end}, {conversations} conversations opened. The top contact reasons were {top}."
    ]
    if not moves.empty:
        grew, shrank = moves[moves.change > 0].head(2), moves[moves.change < 0].head(2)
        describe = lambda m: ", ".join(  # noqa: E731
            f"{escape.markdown(r.tag)} ({r.previous} → {r.last})" for r in m.itertuples()
        )
        if not grew.empty:
            lines.append(f"In the last {s.grain} against the one before, the biggest increase was {describe(grew)}.")
        if not shrank.empty:
            lines.append(f"The biggest decrease was {describe(shrank)}.")
    slow = res[res.closed > 0].sort_values(["median_hours_to_resolve", "tag"], ascending=[False, True]).head(1)
    for r in slow.itertuples():
        lines.append(
            f"The slowest reason to resolve was {escape.markdown(r.tag)}:"
            f" median {r.median_hours_to_resolve} h,"
            f" 90th percentile {r.p90_hours_to_resolve} h."
        )
    lines.append("A conversation with several tags counts once under each tag.")
    return Markdown(" ".join(lines))
