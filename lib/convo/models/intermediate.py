"""Intermediate layer: per-conversation building blocks shared by several facts."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from convo.models.functions import seconds_between
from convo.models.registry import model
from convo.models.vocabulary import (
    AGENT_MESSAGE,
    CLOSED,
    CUSTOMER_MESSAGE,
    FLAG_TAGS,
    OPEN,
    STATUS_CHANGE,
    TAG_ASSIGNED,
)


@model(partition="conversation_id", scope={"stg_conversation_events": ("conversation_id",)})
def int_agent_conversations(stg_conversation_events: ir.Table) -> ir.Table:
    """Each agent's part in each conversation: assigned to it or acting in it, first and last time."""
    e = stg_conversation_events
    acted = e.select("conversation_id", "event_at", agent_id=e.agent_id)
    assigned = e.select("conversation_id", "event_at", agent_id=e.assigned_agent_id)
    agents = acted.union(assigned).filter(ibis._.agent_id.notnull())
    return agents.group_by("conversation_id", "agent_id").aggregate(
        first_seen_at=agents.event_at.min(), last_seen_at=agents.event_at.max()
    )


@model(
    partition="conversation_id",
    scope={"stg_conversation_events": ("conversation_id",), "int_agent_conversations": ("conversation_id",)},
)
def int_conversation_summary(stg_conversation_events: ir.Table, int_agent_conversations: ir.Table) -> ir.Table:
    """Everything the conversation-level facts say about a conversation, computed once."""
    e = stg_conversation_events
    is_customer = e.event == CUSTOMER_MESSAGE
    customer = e.group_by("conversation_id").aggregate(
        first_customer_message_at=e.event_at.min(where=is_customer),
        last_customer_message_sequence=e.event_sequence.max(where=is_customer),
    )
    e = e.join(customer, "conversation_id")
    is_customer = e.event == CUSTOMER_MESSAGE
    is_status = e.event == STATUS_CHANGE
    is_closed = is_status & (e.event_value == CLOSED)
    is_tag = e.event == TAG_ASSIGNED
    is_agent_message = e.event == AGENT_MESSAGE
    summary = e.group_by("conversation_id").aggregate(
        user_id=e.user_id.argmin(e.event_sequence),
        latest_status=e.event_value.argmax(e.event_sequence, where=is_status),
        opened_at=e.event_at.min(),
        last_event_at=e.event_at.max(),
        last_closed_at=e.event_at.max(where=is_closed),
        number_tags_assigned=e.event_value.nunique(where=is_tag),
        **{flag: (is_tag & (e.event_value == tag)).any() for flag, tag in FLAG_TAGS.items()},
        customer_messages=e.count(where=is_customer),
        agent_messages=e.count(where=is_agent_message),
        reopen_count=e.count(where=is_closed & (e.event_sequence < e.last_customer_message_sequence)),
        first_customer_message_at=e.first_customer_message_at.min(),
        first_agent_response_at=e.event_at.min(where=is_agent_message & (e.event_at >= e.first_customer_message_at)),
    )
    status = summary.latest_status.fill_null(OPEN)
    closed_at = ibis.ifelse(status == CLOSED, summary.last_closed_at, ibis.null("timestamp"))
    agents = int_agent_conversations.group_by("conversation_id").aggregate(
        number_involved_agents=int_agent_conversations.count()
    )
    return summary.left_join(agents, "conversation_id").select(
        "conversation_id",
        "user_id",
        status=status,
        opened_at=summary.opened_at,
        closed_at=closed_at,
        last_event_at=summary.last_event_at,
        number_involved_agents=agents.number_involved_agents.fill_null(0),
        number_tags_assigned=summary.number_tags_assigned,
        **{flag: summary[flag].ifelse(1, 0).cast("int32") for flag in FLAG_TAGS},
        interaction_between_customer=summary.customer_messages + summary.agent_messages,
        reopen_count=summary.reopen_count,
        hours_to_resolve=seconds_between(summary.opened_at, closed_at) / 3600.0,
        first_response_minutes=(
            seconds_between(summary.first_customer_message_at, summary.first_agent_response_at) / 60.0
        ),
    )


@model(
    partition="conversation_id",
    scope={"fact_conversation_tags": ("conversation_id",), "fact_conversation_lifecycle": ("id",)},
)
def int_conversation_tags(fact_conversation_tags: ir.Table, fact_conversation_lifecycle: ir.Table) -> ir.Table:
    """Each (conversation, tag) with the days and measures the contact-reason mart groups by."""
    tags, life = fact_conversation_tags, fact_conversation_lifecycle
    joined = tags.join(life, tags.conversation_id == life.id)
    return joined.select(
        conversation_id=tags.conversation_id,
        tag=tags.tag,
        first_assigned_date_key=tags.first_assigned_date_key,
        opened_date_key=life.opened_date_key,
        closed_date_key=life.closed_date_key,
        hours_to_resolve=life.hours_to_resolve,
        first_response_minutes=life.first_response_minutes,
        reopen_count=life.reopen_count,
    )
