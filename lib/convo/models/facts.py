"""Fact layer: conversation-level facts, the tag bridge and the factless event fact."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from convo.models.functions import date_key
from convo.models.registry import model
from convo.models.vocabulary import STATUS_CHANGE, TAG_ASSIGNED

_BY_CONVERSATION = ("conversation_id",)


@model(partition="conversation_id", scope={"int_conversation_summary": _BY_CONVERSATION})
def fact_conversations(int_conversation_summary: ir.Table) -> ir.Table:
    s = int_conversation_summary
    return s.select(
        "conversation_id",
        "user_id",
        conversation_status=s.status,
        conversation_started_at=s.opened_at,
        number_involved_agents=s.number_involved_agents,
        last_event_at=s.last_event_at,
    )


@model(partition="id", scope={"int_conversation_summary": _BY_CONVERSATION})
def fact_conversation_lifecycle(int_conversation_summary: ir.Table) -> ir.Table:
    s = int_conversation_summary
    return s.select(
        id=s.conversation_id,
        user_id=s.user_id,
        status=s.status,
        opened_at=s.opened_at,
        closed_at=s.closed_at,
        number_involved_agents=s.number_involved_agents,
        number_tags_assigned=s.number_tags_assigned,
        interaction_between_customer=s.interaction_between_customer,
        hours_to_resolve=s.hours_to_resolve,
        payments_related=s.payments_related,
        app_related=s.app_related,
        login_related=s.login_related,
        reopen_count=s.reopen_count,
        first_response_minutes=s.first_response_minutes,
        opened_date_key=date_key(s.opened_at),
        closed_date_key=date_key(s.closed_at),
    )


@model(partition="conversation_id", scope={"stg_conversation_events": _BY_CONVERSATION})
def fact_conversation_tags(stg_conversation_events: ir.Table) -> ir.Table:
    tags = stg_conversation_events.filter(stg_conversation_events.event == TAG_ASSIGNED)
    bridge = tags.group_by(["conversation_id", tags.event_value.name("tag")]).aggregate(
        first_assigned_at=tags.event_at.min(),
        times_assigned=tags.count(),
    )
    return bridge.mutate(first_assigned_date_key=date_key(bridge.first_assigned_at))


# A view: the same rows as the staged events, so storing them again would double the write cost.
# Its partition and scope tell the audit which of its rows an incremental build changed.
@model(materialized="view", partition="conversation_id", scope={"stg_conversation_events": _BY_CONVERSATION})
def fact_conversation_events(stg_conversation_events: ir.Table) -> ir.Table:
    e = stg_conversation_events
    return e.select(
        "event_id",
        "conversation_id",
        "event_sequence",
        "event_at",
        date_key=date_key(e.event_at),
        user_id=e.user_id,
        agent_id=e.agent_id,
        assigned_agent_id=e.assigned_agent_id,
        tag=ibis.ifelse(e.event == TAG_ASSIGNED, e.event_value, ibis.null("string")),
        event=e.event,
        status=ibis.ifelse(e.event == STATUS_CHANGE, e.event_value, ibis.null("string")),
    )
