"""Business metrics, each defined once: one Ibis expression per metric, its meaning in `metrics.yml`.

The mart, the dimensions, the report helpers and the site all take a metric from here, so a number
called "reopen rate" or "median hours to resolve" means the same wherever it is shown. A metric is
an aggregate over the rows it is given; the caller chooses the rows and the grouping (the
metric's dimensions: a day, a week, a tag...) and the metric says how those rows become one value.

Most metrics read a *conversation table*: one row per conversation, or per (conversation, tag),
with the columns of `fact_conversation_lifecycle` under these names: `conversation_id`,
`closed_date_key` (NULL unless the conversation's status is CLOSED), `hours_to_resolve`,
`first_response_minutes` and `reopen_count`. `int_conversation_tags` has them as they are;
`conversation_rows()` renames the lifecycle fact's `id`. Counting distinct conversation ids keeps a
conversation with several tags from counting twice within one tag; a median or percentile reads
every row, so group (per-tag) rows by tag, or use the lifecycle fact, to count each conversation once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import ibis
import ibis.expr.types as ir
import yaml

from convo.models.vocabulary import CLOSED

DECLARATIONS = Path(__file__).with_name("metrics.yml")
P90 = 0.9  # the upper percentile the reports show beside each median


def conversation_rows(fact_conversation_lifecycle: ir.Table) -> ir.Table:
    """The lifecycle fact under the column names the metrics read (`id` is the conversation)."""
    return fact_conversation_lifecycle.rename(conversation_id="id")


def _closed(c: ir.Table) -> ir.BooleanValue:
    return c.closed_date_key.notnull()


def conversations_opened(c: ir.Table) -> ir.IntegerScalar:
    return c.conversation_id.nunique()


def conversations_closed(c: ir.Table) -> ir.IntegerScalar:
    return c.conversation_id.nunique(where=_closed(c))


def _hours_to_resolve_if_closed(c: ir.Table) -> ir.FloatingColumn:
    # A value masked to NULL rather than `median(where=...)`: Ibis's PySpark compiler masks the
    # percentage with the filter too, which Spark rejects (it must be a constant).
    return ibis.ifelse(_closed(c), c.hours_to_resolve, ibis.null("float64"))


def median_hours_to_resolve(c: ir.Table) -> ir.FloatingScalar:
    return _hours_to_resolve_if_closed(c).median()


def p90_hours_to_resolve(c: ir.Table) -> ir.FloatingScalar:
    return _hours_to_resolve_if_closed(c).quantile(P90)


def median_first_response_minutes(c: ir.Table) -> ir.FloatingScalar:
    return c.first_response_minutes.median()


def p90_first_response_minutes(c: ir.Table) -> ir.FloatingScalar:
    return c.first_response_minutes.quantile(P90)


def reopen_rate(c: ir.Table) -> ir.FloatingScalar:
    closed = conversations_closed(c)
    reopened = c.conversation_id.nunique(where=_closed(c) & (c.reopen_count > 0))
    return ibis.ifelse(closed > 0, reopened / closed.cast("float64"), ibis.null("float64"))


def resolution_measures(c: ir.Table) -> dict[str, ir.Scalar]:
    """The resolution metrics of a conversation table, named as the reports show them side by side:
    how many conversations and how many closed, how fast they were resolved and first answered, and
    how often reopened. One list for every report that shows them, so the reports cannot drift apart."""
    return {
        "conversations": conversations_opened(c),
        "closed": conversations_closed(c),
        "median_hours_to_resolve": median_hours_to_resolve(c),
        "p90_hours_to_resolve": p90_hours_to_resolve(c),
        "median_first_response_minutes": median_first_response_minutes(c),
        "p90_first_response_minutes": p90_first_response_minutes(c),
        "reopen_rate": reopen_rate(c),
    }


def share_of_contacts(with_reason: ir.IntegerValue, all_opened: ir.IntegerValue) -> ir.FloatingValue:
    """`conversations_opened` of one reason over `conversations_opened` of all conversations, same period."""
    return ibis.ifelse(all_opened > 0, with_reason / all_opened.cast("float64"), ibis.null("float64"))


def conversations_per_agent(agent_conversations: ir.Table) -> ir.IntegerScalar:
    """Over `int_agent_conversations` (one row per agent and conversation), grouped by agent."""
    return agent_conversations.conversation_id.nunique()


def backlog(events: ir.Table, days: ir.Table) -> ir.Table:
    """Per day of `days` (column `date`): conversations open or waiting for the customer at its end.

    `events` is `fact_conversation_events`. A conversation is in the backlog at a day's end when it
    opened before then and its latest status change before then (by event order) is not CLOSED; a
    conversation with no status change yet is OPEN, as in the lifecycle fact.
    """
    in_order = ibis.window(group_by="conversation_id", order_by="event_sequence")
    status = events.filter(events.status.notnull())
    closed_spans = status.mutate(until=status.event_at.lead().over(in_order)).filter(ibis._.status == CLOSED)
    opened = events.group_by("conversation_id").aggregate(opened_at=events.event_at.min())
    ends = days.select("date", day_end=days.date.cast("timestamp") + ibis.interval(days=1))
    opened_by = ends.join(opened, opened.opened_at < ends.day_end).group_by("date").aggregate(opened=ibis._.count())
    closed_at_end = (
        ends.join(
            closed_spans,
            (closed_spans.event_at < ends.day_end)
            & (closed_spans.until.isnull() | (closed_spans.until >= ends.day_end)),
        )
        .group_by("date")
        .aggregate(closed=ibis._.count())
    )
    rows = ends.left_join(opened_by, "date").left_join(closed_at_end, "date")
    return rows.select(ends.date, backlog=rows.opened.fill_null(0) - rows.closed.fill_null(0)).order_by("date")


@dataclass(frozen=True)
class Metric:
    """A declared metric: what it means (from metrics.yml) and the expression that computes it."""

    name: str
    label: str
    unit: str
    definition: str
    dimensions: tuple[str, ...]
    tables: tuple[str, ...]  # published tables with a column holding it
    reports: tuple[str, ...]  # notebooks (file stems) that show it
    charts: tuple[str, ...]  # charts (titles) drawn from it
    code: tuple[str, ...]  # functions that compute it, module.function: each calls the expression
    expression: object


@cache
def declared() -> dict[str, Metric]:
    """Every metric of metrics.yml, in its order; a declaration without an expression is an error."""
    entries = yaml.safe_load(DECLARATIONS.read_text())["metrics"]
    out = {}
    for e in entries:
        expression = globals().get(e["name"])
        if not callable(expression):
            raise ValueError(f"{DECLARATIONS.name}: metric {e['name']!r} has no expression in {__name__}")
        used = e.get("used_by", {})
        out[e["name"]] = Metric(
            e["name"],
            e["label"],
            e["unit"],
            " ".join(e["definition"].split()),
            tuple(e["dimensions"]),
            *(tuple(used.get(k, ())) for k in ("tables", "reports", "charts", "code")),
            expression,
        )
    return out
