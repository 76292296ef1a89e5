"""The fact models on in-memory tables, each answer worked out by hand from the rows."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from model_io import at, by, compiled, rows, run, staged, table, unbound

from convo.models.facts import (
    fact_conversation_events,
    fact_conversation_lifecycle,
    fact_conversation_tags,
    fact_conversations,
)
from convo.models.vocabulary import (
    AGENT_ASSIGNED,
    AGENT_MESSAGE,
    CLOSED,
    CUSTOMER_MESSAGE,
    OPEN,
    STATUS_CHANGE,
    TAG_ASSIGNED,
)

M = "<message>"

# Two summaries: one closed just after midnight (its day keys differ), one still open.
SUMMARY = [
    {
        "conversation_id": 1,
        "user_id": 10,
        "status": CLOSED,
        "opened_at": at("2024-01-31 23:59:59"),
        "closed_at": at("2024-02-01 00:00:00"),
        "last_event_at": at("2024-02-01 00:05:00"),
        "number_involved_agents": 2,
        "number_tags_assigned": 3,
        "payments_related": 1,
        "app_related": 0,
        "login_related": 1,
        "interaction_between_customer": 4,
        "reopen_count": 1,
        "hours_to_resolve": 1 / 3600,
        "first_response_minutes": 0.5,
    },
    {
        "conversation_id": 2,
        "user_id": 11,
        "status": OPEN,
        "opened_at": at("2024-02-29 12:00"),
        "last_event_at": at("2024-02-29 12:00"),
        "number_involved_agents": 0,
        "number_tags_assigned": 0,
        "payments_related": 0,
        "app_related": 0,
        "login_related": 0,
        "interaction_between_customer": 1,
        "reopen_count": 0,
    },
]


def test_conversations_fact_takes_status_start_agents_and_last_event_from_the_summary():
    assert rows(fact_conversations(table("int_conversation_summary", SUMMARY))) == [
        {
            "conversation_id": 1,
            "user_id": 10,
            "conversation_status": CLOSED,
            "conversation_started_at": at("2024-01-31 23:59:59"),
            "number_involved_agents": 2,
            "last_event_at": at("2024-02-01 00:05:00"),
        },
        {
            "conversation_id": 2,
            "user_id": 11,
            "conversation_status": OPEN,
            "conversation_started_at": at("2024-02-29 12:00"),
            "number_involved_agents": 0,
            "last_event_at": at("2024-02-29 12:00"),
        },
    ]


def test_lifecycle_fact_keys_the_days_it_opened_and_closed():
    found = by("id", rows(fact_conversation_lifecycle(table("int_conversation_summary", SUMMARY))))
    # Opened 2024-01-31 23:59:59, closed a second later on 2024-02-01: two different days.
    assert (found[1]["opened_date_key"], found[1]["closed_date_key"]) == (20240131, 20240201)
    # Not closed: no closing day; a leap day is a day like any other.
    assert (found[2]["opened_date_key"], found[2]["closed_date_key"]) == (20240229, None)
    # Every other column is the summary's, under the lifecycle's names.
    renamed = {"id": "conversation_id"}
    for summary in SUMMARY:
        fact = found[summary["conversation_id"]]
        assert {c: v for c, v in fact.items() if not c.endswith("_date_key")} == {
            c: summary.get(renamed.get(c, c)) for c in fact if not c.endswith("_date_key")
        }


def test_tag_bridge_counts_each_tag_once_per_conversation():
    events = staged(
        (1, "2024-01-06 9:00", 6, None, CUSTOMER_MESSAGE, M),
        (1, "2024-01-06 9:05", 6, 7, TAG_ASSIGNED, "login"),
        (1, "2024-01-06 9:06", 6, 7, TAG_ASSIGNED, "login"),  # again: one row, assigned twice
        (1, "2024-01-06 9:10", 6, 7, TAG_ASSIGNED, "app_question"),
        (1, "2024-01-06 10:00", 6, 7, STATUS_CHANGE, CLOSED),
        (1, "2024-01-07 8:00", 6, 7, TAG_ASSIGNED, "refund_delay"),  # after closing, the next day
        (2, "2024-01-06 23:59", 7, 8, TAG_ASSIGNED, "login"),  # the same tag in another conversation
    )
    assert [tuple(r.values()) for r in rows(fact_conversation_tags(events))] == [
        # conversation, tag, first assigned, times assigned, day of the first assignment
        (1, "app_question", at("2024-01-06 9:10"), 1, 20240106),
        (1, "login", at("2024-01-06 9:05"), 2, 20240106),
        (1, "refund_delay", at("2024-01-07 8:00"), 1, 20240107),
        (2, "login", at("2024-01-06 23:59"), 1, 20240106),
    ]


def test_a_conversation_without_tags_has_no_row_in_the_tag_bridge():
    events = staged((1, "2024-01-06 9:00", 6, None, CUSTOMER_MESSAGE, M))
    assert rows(fact_conversation_tags(events)) == []


def test_event_fact_splits_the_value_into_tag_and_status():
    events = staged(
        (1, "2024-01-06 9:00", 6, None, CUSTOMER_MESSAGE, M),
        (1, "2024-01-06 9:01", 6, 7, AGENT_ASSIGNED, "8"),
        (1, "2024-01-06 9:02", 6, 8, TAG_ASSIGNED, "login"),
        (1, "2024-01-06 9:03", 6, 8, AGENT_MESSAGE, M),
        (1, "2024-01-07 0:00", 6, 8, STATUS_CHANGE, CLOSED),
        (1, "2024-01-07 0:01", 6, 8, "note_added", "x"),  # unknown type: kept, no tag, no status
    )
    found = rows(fact_conversation_events(events))
    columns = ("event_sequence", "date_key", "agent_id", "assigned_agent_id", "tag", "event", "status")
    assert [tuple(r[c] for c in columns) for r in found] == [
        (1, 20240106, None, None, None, CUSTOMER_MESSAGE, None),
        (2, 20240106, 7, 8, None, AGENT_ASSIGNED, None),
        (3, 20240106, 8, None, "login", TAG_ASSIGNED, None),
        (4, 20240106, 8, None, None, AGENT_MESSAGE, None),
        (5, 20240107, 8, None, None, STATUS_CHANGE, CLOSED),
        (6, 20240107, 8, None, None, "note_added", None),
    ]
    assert [r["event_id"] for r in found] == [f"1-{n}" for n in range(1, 7)]  # one row per staged event
    assert {(r["conversation_id"], r["user_id"]) for r in found} == {(1, 6)}


# -- one row per conversation, whatever the summary holds ---------------------------------------
SUMMARY_ROW = st.fixed_dictionaries(
    {
        "conversation_id": st.integers(1, 6),
        "user_id": st.integers(1, 3),
        "status": st.sampled_from([OPEN, CLOSED]),
        "opened_at": st.datetimes(at("2016-01-01 0:00"), at("2099-12-30 0:00")),
    }
)
CONVERSATIONS = compiled(fact_conversations(unbound("int_conversation_summary")))
LIFECYCLE = compiled(fact_conversation_lifecycle(unbound("int_conversation_summary")))


@settings(max_examples=30, deadline=None)
@given(st.lists(SUMMARY_ROW, max_size=8, unique_by=lambda r: r["conversation_id"]))
def test_conversation_facts_have_one_row_per_conversation_of_the_summary(summary):
    ids = sorted(r["conversation_id"] for r in summary)
    assert [r["conversation_id"] for r in run(CONVERSATIONS, int_conversation_summary=summary)] == ids
    lifecycle = run(LIFECYCLE, int_conversation_summary=summary)
    assert [r["id"] for r in lifecycle] == ids
    opened = {r["conversation_id"]: r["opened_at"] for r in summary}
    assert all(r["opened_date_key"] == int(opened[r["id"]].strftime("%Y%m%d")) for r in lifecycle)
