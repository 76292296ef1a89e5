"""The intermediate models on in-memory tables, each answer worked out by hand from the rows."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from model_io import at, by, compiled, rows, run, staged, staged_events, table, unbound

from convo.models.intermediate import int_agent_conversations, int_conversation_summary, int_conversation_tags
from convo.models.vocabulary import (
    AGENT_ASSIGNED,
    AGENT_MESSAGE,
    CLOSED,
    CUSTOMER_MESSAGE,
    OPEN,
    STATUS_CHANGE,
    STATUS_VALUES,
    TAG_ASSIGNED,
    WAITING,
)

C, S, AA, AM, T = CUSTOMER_MESSAGE, STATUS_CHANGE, AGENT_ASSIGNED, AGENT_MESSAGE, TAG_ASSIGNED
M = "<message>"


def test_agents_assigned_or_acting_each_once_per_conversation():
    events = staged(
        (1, "2024-01-01 9:00", 1, None, C, M),  # a customer event has no agent
        (1, "2024-01-01 9:05", 1, 7, AA, "7"),  # 7 assigns itself: acting and assigned, one row
        (1, "2024-01-01 9:20", 1, 7, AM, M),
        (1, "2024-01-01 12:00", 1, 8, S, CLOSED),  # 8 acts without being assigned
        (2, "2024-01-02 9:01", 2, 7, AA, "9"),  # 9 is assigned and never acts
        (2, "2024-01-02 9:30", 2, 7, AM, M),
        (3, "2024-01-03 9:00", 3, None, C, M),  # no agent at all: no row
    )
    found = rows(int_agent_conversations(events))
    assert [tuple(r.values()) for r in found] == [
        # conversation, agent, first seen, last seen
        (1, 7, at("2024-01-01 9:05"), at("2024-01-01 9:20")),
        (1, 8, at("2024-01-01 12:00"), at("2024-01-01 12:00")),
        (2, 7, at("2024-01-02 9:01"), at("2024-01-02 9:30")),
        (2, 9, at("2024-01-02 9:01"), at("2024-01-02 9:01")),
    ]
    assert list(found[0]) == ["conversation_id", "agent_id", "first_seen_at", "last_seen_at"]


# Each conversation probes one rule of int_conversation_summary (intermediate.yml); events are
# listed in staged order (time, then input order).
EVENTS = staged(
    # 101: a plain conversation, closed at the end.
    (101, "2024-01-01 9:00", 1, None, C, M),
    (101, "2024-01-01 9:05", 1, 7, AA, "7"),
    (101, "2024-01-01 9:20", 1, 7, AM, M),
    (101, "2024-01-01 9:20", 1, 7, S, WAITING),
    (101, "2024-01-01 10:30", 1, None, C, M),
    (101, "2024-01-01 12:00", 1, 7, S, CLOSED),
    # 102: two status changes in the same second: the later in order (OPEN) is the status.
    (102, "2024-01-02 8:00", 2, None, C, M),
    (102, "2024-01-02 9:00", 2, 8, S, CLOSED),
    (102, "2024-01-02 9:00", 2, 8, S, OPEN),
    # 103: the same tie the other way round (CLOSED at 9:00); the agent's message in the same
    # second as the first customer message, and before it in order, is the first response.
    (103, "2024-01-02 8:00", 2, 8, AM, M),
    (103, "2024-01-02 8:00", 2, None, C, M),
    (103, "2024-01-02 9:00", 2, 8, S, OPEN),
    (103, "2024-01-02 9:00", 2, 8, S, CLOSED),
    # 104: no status change at all (OPEN); a flag tag; an event type the models do not know.
    (104, "2024-01-03 7:00", 3, None, C, M),
    (104, "2024-01-03 7:30", 3, 9, T, "payments"),
    (104, "2024-01-03 8:00", 3, 9, "note_added", "x"),
    # 106: agent 7 assigns 8 and 9; 9 replies.
    (106, "2024-01-05 9:00", 5, None, C, M),
    (106, "2024-01-05 9:01", 5, 7, AA, "8"),
    (106, "2024-01-05 9:02", 5, 7, AA, "9"),
    (106, "2024-01-05 9:30", 5, 9, AM, M),
    # 107: a repeated tag, two flag tags, and a tag assigned after closing.
    (107, "2024-01-06 9:00", 6, None, C, M),
    (107, "2024-01-06 9:05", 6, 7, T, "login"),
    (107, "2024-01-06 9:06", 6, 7, T, "login"),
    (107, "2024-01-06 9:10", 6, 7, T, "app_question"),
    (107, "2024-01-06 10:00", 6, 7, S, CLOSED),
    (107, "2024-01-07 8:00", 6, 7, T, "refund_delay"),
    # 108: closed, reopened by the customer, closed, reopened, set open, closed.
    (108, "2024-01-08 9:00", 8, None, C, M),
    (108, "2024-01-08 9:10", 8, 7, AM, M),
    (108, "2024-01-08 9:20", 8, 7, S, CLOSED),
    (108, "2024-01-08 11:00", 8, None, C, M),
    (108, "2024-01-08 11:30", 8, 7, S, CLOSED),
    (108, "2024-01-09 9:00", 8, None, C, M),
    (108, "2024-01-09 9:30", 8, 7, S, OPEN),
    (108, "2024-01-09 10:00", 8, 7, S, CLOSED),
    # 109: the agent writes first; the first event's user (10) is the conversation's user.
    (109, "2024-01-10 8:00", 10, 7, AM, M),
    (109, "2024-01-10 9:00", 11, None, C, M),
    (109, "2024-01-10 9:45", 11, 7, AM, M),
    # 110: closed, then the customer writes again and nobody changes the status.
    (110, "2024-01-11 9:00", 12, None, C, M),
    (110, "2024-01-11 9:30", 12, 7, S, CLOSED),
    (110, "2024-01-11 10:00", 12, None, C, M),
    # 111: no customer message at all.
    (111, "2024-01-12 9:00", 13, 7, AM, M),
    (111, "2024-01-12 9:05", 13, 7, S, CLOSED),
    # 112: one customer message, no agent.
    (112, "2024-01-13 9:00", 14, None, C, M),
)
# int_agent_conversations of EVENTS: the summary only counts its rows per conversation.
AGENTS = {101: [7], 102: [8], 103: [8], 104: [9], 106: [7, 8, 9], 107: [7], 108: [7], 109: [7], 110: [7], 111: [7]}

SUMMARY_COLUMNS = [
    "user_id",
    "status",
    "opened_at",
    "closed_at",
    "last_event_at",
    "number_involved_agents",
    "number_tags_assigned",
    "payments_related",
    "app_related",
    "login_related",
    "interaction_between_customer",
    "reopen_count",
]
# One row per conversation, in SUMMARY_COLUMNS order; then hours_to_resolve and first_response_minutes.
EXPECTED_SUMMARY = {
    # latest status CLOSED (seq 6); 2 customer + 1 agent messages; the CLOSED comes after the
    # last customer message: no reopen; 9:00 -> 12:00 = 3 h; first reply 9:20, 20 min after 9:00.
    101: (1, CLOSED, "01 9:00", "01 12:00", "01 12:00", 1, 0, 0, 0, 0, 3, 0, 3.0, 20.0),
    # the later of the two 9:00 changes is OPEN: not closed, so no closed_at and no hours.
    102: (2, OPEN, "02 8:00", None, "02 9:00", 1, 0, 0, 0, 0, 1, 0, None, None),
    # OPEN (seq 3) then CLOSED (seq 4), both at 9:00: closed, 1 h after 8:00; the reply at 8:00
    # is at the first customer message's time (at or after it): 0 minutes.
    103: (2, CLOSED, "02 8:00", "02 9:00", "02 9:00", 1, 0, 0, 0, 0, 2, 0, 1.0, 0.0),
    # no status change: OPEN; the unknown event counts as the last event, not as an interaction.
    104: (3, OPEN, "03 7:00", None, "03 8:00", 1, 1, 1, 0, 0, 1, 0, None, None),
    # agents 7, 8, 9; the reply at 9:30 is 30 min after the message at 9:00.
    106: (5, OPEN, "05 9:00", None, "05 9:30", 3, 0, 0, 0, 0, 2, 0, None, 30.0),
    # tags login (twice), app_question, refund_delay: 3 distinct; closed at 10:00 (1 h); the tag
    # after closing is the last event; tag events are no messages, so no first response.
    107: (6, CLOSED, "06 9:00", "06 10:00", "07 8:00", 1, 3, 0, 1, 1, 1, 0, 1.0, None),
    # CLOSED at seq 3 and 5 come before the last customer message (seq 6): 2 reopens; the last
    # CLOSED (01-09 10:00) closes it: 25 h after 01-08 9:00; 3 customer + 1 agent messages.
    108: (8, CLOSED, "08 9:00", "09 10:00", "09 10:00", 1, 0, 0, 0, 0, 4, 2, 25.0, 10.0),
    # user 10 (first event); the agent's 8:00 message precedes the first customer message, so
    # the first response is 9:45, 45 min after 9:00; 1 customer + 2 agent messages.
    109: (10, OPEN, "10 8:00", None, "10 9:45", 1, 0, 0, 0, 0, 3, 0, None, 45.0),
    # the customer wrote after the CLOSED: one reopen, yet the latest status change is CLOSED.
    110: (12, CLOSED, "11 9:00", "11 9:30", "11 10:00", 1, 0, 0, 0, 0, 2, 1, 0.5, None),
    # no customer message: no first response, and no reopen; closed 5 min after opening.
    111: (13, CLOSED, "12 9:00", "12 9:05", "12 9:05", 1, 0, 0, 0, 0, 1, 0, 5 / 60, None),
    # no agent row: 0 agents, not NULL.
    112: (14, OPEN, "13 9:00", None, "13 9:00", 0, 0, 0, 0, 0, 1, 0, None, None),
}


def _day(text: str | None):
    return at(f"2024-01-{text}") if text else None


@pytest.fixture(scope="module")
def summary() -> dict[int, dict]:
    agents = table(
        "int_agent_conversations", [{"conversation_id": c, "agent_id": a} for c, ids in AGENTS.items() for a in ids]
    )
    return by("conversation_id", rows(int_conversation_summary(EVENTS, agents)))


@pytest.mark.parametrize("conversation", sorted(EXPECTED_SUMMARY))
def test_conversation_summary(summary, conversation):
    expected = dict(zip(SUMMARY_COLUMNS, EXPECTED_SUMMARY[conversation]))
    for column in ("opened_at", "closed_at", "last_event_at"):
        expected[column] = _day(expected[column])
    hours, minutes = EXPECTED_SUMMARY[conversation][len(SUMMARY_COLUMNS) :]
    found = summary[conversation]
    assert {c: found[c] for c in SUMMARY_COLUMNS} == expected
    assert (found["hours_to_resolve"], found["first_response_minutes"]) == (
        pytest.approx(hours),
        pytest.approx(minutes),
    )


def test_summary_has_one_row_per_conversation(summary):
    assert sorted(summary) == sorted(EXPECTED_SUMMARY)


# -- the summary against a replay of random event histories ------------------------------------
EVENT = st.tuples(
    st.integers(1, 3),  # conversation
    st.integers(0, 2),  # minutes after 9:00: few, so that ties in time are common
    st.sampled_from([1, 2]),  # user
    st.sampled_from([None, 7, 8]),  # agent
    st.sampled_from([(C, M), (AM, M), (S, OPEN), (S, WAITING), (S, CLOSED), (T, "login"), (T, "payments"), (AA, "9")]),
)
AGENT_CONVERSATIONS = compiled(int_agent_conversations(unbound("stg_conversation_events")))
SUMMARY = compiled(int_conversation_summary(unbound("stg_conversation_events"), unbound("int_agent_conversations")))


def _replay(history: list[tuple]) -> dict:
    """What intermediate.yml says of one conversation's (time, user, agent, event, value) events, in
    staged order, worked out in plain Python."""
    statuses = [value for _, _, _, event, value in history if event == S]
    customer = [i for i, (_, _, _, event, _) in enumerate(history) if event == C]
    closes = [i for i, (_, _, _, event, value) in enumerate(history) if event == S and value == CLOSED]
    status = statuses[-1] if statuses else OPEN
    first_message = min((time for time, _, _, event, _ in history if event == C), default=None)
    replies = [time for time, _, _, event, _ in history if event == AM and first_message and time >= first_message]
    acting = {agent for _, _, agent, _, _ in history if agent is not None}
    assigned = {int(value) for _, _, _, event, value in history if event == AA}
    return {
        "user_id": history[0][1],
        "status": status,
        "closed_at": max(history[i][0] for i in closes) if status == CLOSED else None,
        "number_involved_agents": len(acting | assigned),
        "reopen_count": sum(1 for i in closes if customer and i < customer[-1]),
        "number_tags_assigned": len({value for _, _, _, event, value in history if event == T}),
        "interaction_between_customer": sum(1 for _, _, _, event, _ in history if event in (C, AM)),
        "first_response_minutes": (min(replies) - first_message).total_seconds() / 60 if replies else None,
    }


@settings(max_examples=30, deadline=None)
@given(st.lists(EVENT, min_size=1, max_size=14))
def test_summary_and_agents_agree_with_a_replay_of_the_events(events):
    # Staged order: by time, ties in input order (a stable sort keeps it).
    ordered = sorted(events, key=lambda e: (e[0], e[1]))
    history_of: dict[int, list[tuple]] = {}
    for conversation, minute, user, agent, (event, value) in ordered:
        history_of.setdefault(conversation, []).append((at(f"2024-01-01 9:{minute:02d}"), user, agent, event, value))
    staged_rows = staged_events(*((c, f"2024-01-01 9:{m:02d}", u, a, e, v) for c, m, u, a, (e, v) in ordered))
    agents = run(AGENT_CONVERSATIONS, stg_conversation_events=staged_rows)
    found = by("conversation_id", run(SUMMARY, stg_conversation_events=staged_rows, int_agent_conversations=agents))
    assert sorted(found) == sorted(history_of)  # one row per conversation of the events
    for conversation, history in history_of.items():
        replayed = _replay(history)
        assert {c: found[conversation][c] for c in replayed} == replayed, conversation
        assert found[conversation]["status"] in STATUS_VALUES


def test_conversation_tags_carry_their_conversation_days_and_measures():
    tags = table(
        "fact_conversation_tags",
        [
            {"conversation_id": 1, "tag": "login", "first_assigned_date_key": 20240101},
            {"conversation_id": 1, "tag": "payments", "first_assigned_date_key": 20240102},
            {"conversation_id": 2, "tag": "login", "first_assigned_date_key": 20240103},
        ],
    )
    lifecycle = table(
        "fact_conversation_lifecycle",
        [
            {
                "id": 1,
                "opened_date_key": 20240101,
                "closed_date_key": 20240102,
                "hours_to_resolve": 26.5,
                "first_response_minutes": 12.0,
                "reopen_count": 1,
            },
            {"id": 2, "opened_date_key": 20240103, "reopen_count": 0},  # still open, no reply
            {"id": 3, "opened_date_key": 20240103, "reopen_count": 0},  # no tag: no row
        ],
    )
    measures = ("opened_date_key", "closed_date_key", "hours_to_resolve", "first_response_minutes", "reopen_count")
    assert rows(int_conversation_tags(tags, lifecycle)) == [
        {
            "conversation_id": 1,
            "tag": "login",
            "first_assigned_date_key": 20240101,
            **dict(zip(measures, (20240101, 20240102, 26.5, 12.0, 1))),
        },
        {
            "conversation_id": 1,
            "tag": "payments",
            "first_assigned_date_key": 20240102,
            **dict(zip(measures, (20240101, 20240102, 26.5, 12.0, 1))),
        },
        {
            "conversation_id": 2,
            "tag": "login",
            "first_assigned_date_key": 20240103,
            **dict(zip(measures, (20240103, None, None, None, 0))),
        },
    ]
