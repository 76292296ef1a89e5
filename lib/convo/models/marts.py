"""Mart layer: tables shaped for self-service BI tools."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from convo.models import metrics
from convo.models.registry import model

_DAY_AND_TAG = ["date_key", "tag"]


@model(
    partition="date_key",
    scope={
        "int_conversation_tags": ("opened_date_key", "first_assigned_date_key", "closed_date_key"),
        "fact_conversation_lifecycle": ("opened_date_key",),
        "dim_tag": None,  # a changed mapping relabels every day
    },
)
def mart_contact_reasons_daily(
    int_conversation_tags: ir.Table, fact_conversation_lifecycle: ir.Table, dim_tag: ir.Table
) -> ir.Table:
    """Contact reasons per day: volume opened, tagged and closed, resolution and share of the day."""
    t = int_conversation_tags
    opened = t.group_by(date_key=t.opened_date_key, tag=t.tag).aggregate(
        conversations_opened=metrics.conversations_opened(t)
    )
    tagged = t.group_by(date_key=t.first_assigned_date_key, tag=t.tag).aggregate(
        conversations_tagged=t.conversation_id.nunique()
    )
    c = t.filter(t.closed_date_key.notnull())
    closed = c.group_by(date_key=c.closed_date_key, tag=c.tag).aggregate(
        conversations_closed=metrics.conversations_closed(c),
        median_hours_to_resolve=metrics.median_hours_to_resolve(c),
        p90_hours_to_resolve=metrics.p90_hours_to_resolve(c),
        median_first_response_minutes=metrics.median_first_response_minutes(c),
        p90_first_response_minutes=metrics.p90_first_response_minutes(c),
        reopen_count=c.reopen_count.sum(),
    )
    life = metrics.conversation_rows(fact_conversation_lifecycle)
    day = life.group_by(date_key=life.opened_date_key).aggregate(
        all_conversations_opened=metrics.conversations_opened(life)
    )
    keys = ibis.union(*(x.select(*_DAY_AND_TAG) for x in (opened, tagged, closed)), distinct=True)
    rows = (
        keys.left_join(opened, _DAY_AND_TAG)
        .left_join(tagged, _DAY_AND_TAG)
        .left_join(closed, _DAY_AND_TAG)
        .left_join(day, "date_key")
        .left_join(dim_tag, "tag")
    )
    conversations_opened = rows.conversations_opened.fill_null(0)
    day_total = rows.all_conversations_opened.fill_null(0)
    return rows.select(
        "date_key",
        "tag",
        "contact_reason",
        "category",
        conversations_opened=conversations_opened,
        conversations_tagged=rows.conversations_tagged.fill_null(0),
        conversations_closed=rows.conversations_closed.fill_null(0),
        median_hours_to_resolve=rows.median_hours_to_resolve,
        p90_hours_to_resolve=rows.p90_hours_to_resolve,
        median_first_response_minutes=rows.median_first_response_minutes,
        p90_first_response_minutes=rows.p90_first_response_minutes,
        reopen_count=rows.reopen_count.fill_null(0),
        all_conversations_opened=day_total,
        share_of_day=metrics.share_of_contacts(conversations_opened, day_total),
    )
