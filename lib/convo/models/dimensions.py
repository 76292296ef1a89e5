"""Dimension layer: date, user, agent and tag."""

from __future__ import annotations

import calendar
import datetime

import ibis
import ibis.expr.types as ir

from convo.event_window import CALENDAR_END, CALENDAR_START
from convo.models import metrics
from convo.models.functions import date_key
from convo.models.registry import model

FIRST_DATE, LAST_DATE = CALENDAR_START, CALENDAR_END
UNMAPPED = "unmapped"

_MONTH_NAMES = dict(enumerate(calendar.month_name[1:], start=1))
# day_of_week counts from Sunday = 0; Ibis numbers Monday = 0.
_DAY_NAMES = dict(enumerate(["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]))


def _calendar() -> ir.Table:
    days = (LAST_DATE - FIRST_DATE).days + 1
    return ibis.memtable({"date": [FIRST_DATE + datetime.timedelta(days=i) for i in range(days)]})


@model()
def dim_date() -> ir.Table:
    d = _calendar()
    day_of_week = ((d.date.day_of_week.index() + 1) % 7).cast("int32")
    return d.select(
        date_key=date_key(d.date),
        date=d.date,
        year=d.date.year().cast("int32"),
        quarter=d.date.quarter().cast("int32"),
        month=d.date.month().cast("int32"),
        month_name=d.date.month().cases(*_MONTH_NAMES.items()),
        day=d.date.day().cast("int32"),
        day_of_week=day_of_week,
        day_name=day_of_week.cases(*_DAY_NAMES.items()),
        week_of_year=d.date.week_of_year().cast("int32"),
        is_weekend=day_of_week.isin([0, 6]),
    )


@model(partition="id", scope={"stg_conversation_events": ("user_id",), "fact_conversations": ("user_id",)})
def dim_user(stg_conversation_events: ir.Table, fact_conversations: ir.Table) -> ir.Table:
    e = stg_conversation_events
    seen = e.group_by(id=e.user_id).aggregate(first_seen_at=e.event_at.min(), last_seen_at=e.event_at.max())
    owned = fact_conversations.group_by(id=fact_conversations.user_id).aggregate(
        conversation_count=fact_conversations.count()
    )
    return seen.left_join(owned, "id").select(
        "id",
        "first_seen_at",
        "last_seen_at",
        conversation_count=owned.conversation_count.fill_null(0),
        # Profile attributes: no user source yet, so they stay NULL rather than hold placeholders.
        user_name=ibis.null("string"),
        email=ibis.null("string"),
        country=ibis.null("string"),
        signed_up_at=ibis.null("timestamp"),
    )


@model(partition="id", scope={"int_agent_conversations": ("agent_id",)})
def dim_agent(int_agent_conversations: ir.Table) -> ir.Table:
    a = int_agent_conversations
    handled = a.group_by(id=a.agent_id).aggregate(
        first_seen_at=a.first_seen_at.min(),
        last_seen_at=a.last_seen_at.max(),
        conversations_handled=metrics.conversations_per_agent(a),
    )
    # Profile attributes: no agent source yet, so they stay NULL rather than hold placeholders.
    return handled.mutate(agent_name=ibis.null("string"), team=ibis.null("string"), hired_at=ibis.null("timestamp"))


@model()
def dim_tag(fact_conversation_tags: ir.Table, seed_tag_contact_reasons: ir.Table) -> ir.Table:
    mapping = seed_tag_contact_reasons
    seen = fact_conversation_tags.select("tag").distinct()
    unmapped = seen.filter(seen.tag.notin(mapping.tag)).select(
        "tag", contact_reason=seen.tag, category=ibis.literal(UNMAPPED)
    )
    return mapping.select("tag", "contact_reason", "category").union(unmapped)
