"""Staging on in-memory tables: parsing and rejecting raw rows, event ids, duplicates, event order."""

from __future__ import annotations

import hashlib
import uuid

import ibis
from hypothesis import given, settings
from hypothesis import strategies as st
from model_io import RAW_SCHEMA, WINDOW, at, compiled, rows, run, table, unbound

from convo.models.staging import (
    MAX_FIELD_CHARS,
    RAW_COLUMNS,
    accepted_events,
    deduplicate_events,
    first_occurrences,
    parse_raw_events,
    repeated_events,
    stg_conversation_events,
)

M = "<message>"
CONVERSATION, CONVERSATION_ID = "10000000000101", 10000000000101


def raw(*lines: tuple[str, ...]) -> ibis.Table:
    """Raw rows (the six fields as text) of one file, from line 2 (line 1 is the header)."""
    return ibis.memtable(
        [
            {**dict(zip(RAW_COLUMNS, line)), "source_file": "events.csv", "source_line": n, "file_seq": 1}
            for n, line in enumerate(lines, start=2)
        ],
        schema=RAW_SCHEMA,
    )


def parsed(*lines: tuple[str, ...]) -> dict[int, dict]:
    """parse_raw_events's rows by source line."""
    return {r["source_line"]: r for r in rows(parse_raw_events(raw(*lines), WINDOW))}


def reasons(*lines: tuple[str, ...]) -> list[str | None]:
    found = parsed(*lines)
    return [found[n]["reject_reason"] for n in sorted(found)]


def test_fields_are_trimmed_and_typed():
    found = parsed(
        (" 2024-01-01 9:05:00 ", f" {CONVERSATION}", "1 ", "", " Status_Changed_To ", " waiting for customer "),
        ("2024-01-01 9:06:00", CONVERSATION, "1", "7", "tag_assigned", " Payments "),
        ("2024-01-01 9:07:00", CONVERSATION, "1", "7", "AGENT_ASSIGNED", " 8 "),
        ("2024-01-01 9:08:00", CONVERSATION, "1", "7", "message_sent_to_customer", " <b>Hi</b> "),
        ("2024-01-01 9:09:00", CONVERSATION, "1", "", "Note_Added", "x"),  # unknown type: staged, lower-cased
    )
    typed = ["event_at", "conversation_id_typed", "user_id_typed", "agent_id_typed", "event_typed"]
    assert {
        n: tuple(r[c] for c in [*typed, "event_value_typed", "assigned_agent_id", "reject_reason"])
        for n, r in found.items()
    } == {
        2: (at("2024-01-01 9:05"), CONVERSATION_ID, 1, None, "status_changed_to", "WAITING FOR CUSTOMER", None, None),
        3: (at("2024-01-01 9:06"), CONVERSATION_ID, 1, 7, "tag_assigned", "payments", None, None),
        4: (at("2024-01-01 9:07"), CONVERSATION_ID, 1, 7, "agent_assigned", "8", 8, None),
        5: (at("2024-01-01 9:08"), CONVERSATION_ID, 1, 7, "message_sent_to_customer", "<b>Hi</b>", None, None),
        6: (at("2024-01-01 9:09"), CONVERSATION_ID, 1, None, "note_added", "x", None, None),
    }
    assert found[2]["event_timestamp"] == " 2024-01-01 9:05:00 "  # the raw text is kept as it came


def test_each_rule_rejects_with_its_reason():
    ok = ("2024-01-01 9:00:00", CONVERSATION, "1", "7", "message_sent_to_customer", M)

    def but(**fields) -> tuple[str, ...]:
        return tuple(fields.get(n, v) for n, v in zip(RAW_COLUMNS, ok))

    window = "2016-01-01 00:00:00 to 2099-12-31 23:59:59"
    statuses = "OPEN, WAITING FOR CUSTOMER, CLOSED"
    assert reasons(
        ok,
        but(event_timestamp="2024-02-30 10:00:00"),  # no such day
        but(event_timestamp=" "),
        but(event_timestamp="2015-12-31 23:59:59"),  # one second before the window
        but(event_timestamp="2100-01-01 0:00:00"),  # one second after it
        but(conversation_id="12.5"),
        but(conversation_id="99999999999999999999"),  # above 2**63 - 1
        but(user_id="0"),  # upstream's "unknown"
        but(agent_id="-1"),
        but(user_id=""),
        but(event=""),
        but(event="agent_assigned", event_value="abc"),
        but(event="agent_assigned", event_value=""),
        but(event="status_changed_to", event_value="Pending"),
        but(event="status_changed_to", event_value=" "),
        but(event="tag_assigned", event_value="  "),
        but(event_value="a\x00b"),
        but(event_value="x" * (MAX_FIELD_CHARS + 1)),
        but(event_value="x" * MAX_FIELD_CHARS),  # at the limit: staged
    ) == [
        None,
        "event_timestamp '2024-02-30 10:00:00' is not a timestamp like 2019-04-04 1:18:45",
        "event_timestamp is empty",
        f"event_timestamp '2015-12-31 23:59:59' is outside the accepted window {window} (event_window in convo.toml)",
        f"event_timestamp '2100-01-01 0:00:00' is outside the accepted window {window} (event_window in convo.toml)",
        "conversation_id '12.5' is not an integer",
        "conversation_id '99999999999999999999' is too large for a 64-bit integer",
        "user_id '0' is not a positive integer",
        "agent_id '-1' is not a positive integer",
        "user_id is empty",
        "event is empty",
        "agent_assigned value 'abc' is not an agent id",
        "agent_assigned value '' is not an agent id",
        f"status_changed_to value 'Pending' is not one of {statuses}",
        "status_changed_to has no status value",
        "tag_assigned has no tag",
        "event_value contains a NUL character",
        f"event_value is longer than {MAX_FIELD_CHARS} characters",
        None,
    ]


def test_every_reason_of_a_row_is_given():
    # Order of the rules: empty timestamp, empty ids, ids that are no integer, empty event.
    assert reasons(("", "abc", "", "", "", "")) == [
        "event_timestamp is empty; user_id is empty; conversation_id 'abc' is not an integer; event is empty"
    ]


def _md5(*fields: str) -> str:
    """The event id: the MD5 of the six typed fields joined by \x1f, stored as a 128-bit UUID
    (read back here as the UUID's text: the MD5's 32 hex digits in the UUID's groups)."""
    return str(uuid.UUID(hashlib.md5("\x1f".join(fields).encode()).hexdigest()))


def test_accepted_events_keep_staged_rows_with_an_id_from_their_six_typed_fields():
    events = rows(
        accepted_events(
            parse_raw_events(
                raw(
                    ("2024-01-01 9:05:00", CONVERSATION, "1", "", "status_changed_to", "closed"),
                    (
                        " 2024-01-01 09:05:00",
                        CONVERSATION,
                        " 1",
                        " ",
                        "STATUS_CHANGED_TO",
                        " Closed ",
                    ),  # the same, typed
                    ("2024-01-01 9:05:00", CONVERSATION, "1", "7", "status_changed_to", "closed"),  # an agent: another
                    ("2024-01-01 9:05:00", CONVERSATION, "0", "", "status_changed_to", "closed"),  # rejected
                ),
                WINDOW,
            )
        )
    )
    without_agent = _md5("2024-01-01 09:05:00", CONVERSATION, "1", "", "status_changed_to", "CLOSED")
    with_agent = _md5("2024-01-01 09:05:00", CONVERSATION, "1", "7", "status_changed_to", "CLOSED")
    assert [(r["event_id"], r["source_line"], r["agent_id"], r["event_value"]) for r in events] == sorted(
        [(without_agent, 2, None, "CLOSED"), (without_agent, 3, None, "CLOSED"), (with_agent, 4, 7, "CLOSED")]
    )
    assert {(r["conversation_id"], r["user_id"], r["event"], r["event_at"]) for r in events} == {
        (CONVERSATION_ID, 1, "status_changed_to", at("2024-01-01 9:05"))
    }


def positions(*events: tuple[str, int, int]) -> ibis.Table:
    """accepted_events rows from (event id, file, line); the other columns do not matter here."""
    return table("accepted_events", [{"event_id": e, "file_seq": f, "source_line": n} for e, f, n in events])


def kept(events: ibis.Table) -> list[tuple[str, int, int]]:
    return [(r["event_id"], r["file_seq"], r["source_line"]) for r in rows(deduplicate_events(events))]


def test_a_duplicate_is_kept_at_its_first_occurrence_in_input_order():
    # a: lines 5 and 3 of file 1 -> line 3. b: line 9 of file 1 comes before line 2 of file 2.
    events = positions(("a", 1, 5), ("a", 1, 3), ("b", 2, 2), ("b", 1, 9), ("c", 2, 4))
    assert kept(events) == [("a", 1, 3), ("b", 1, 9), ("c", 2, 4)]


def test_the_repeated_events_are_the_ids_seen_twice_with_their_first_position():
    # a: lines 5 and 3 of file 1 -> first at line 3 of file 1; b and c once each: not listed.
    events = positions(("a", 1, 5), ("b", 2, 2), ("a", 1, 3), ("c", 2, 4))
    assert [(r["event_id"], r["first_position"]) for r in rows(repeated_events(events))] == [("a", 2**32 + 3)]
    # Given that table, the later copy is dropped and every other row kept.
    repeated = events.filter(events.source_line == 3).select(
        "event_id", first_position=ibis.literal(2**32 + 3, "int64")
    )
    kept_rows = rows(first_occurrences(events, repeated))
    assert sorted((r["event_id"], r["file_seq"], r["source_line"]) for r in kept_rows) == [
        ("a", 1, 3),
        ("b", 2, 2),
        ("c", 2, 4),
    ]


EVENT_AT = st.tuples(st.sampled_from("abcd"), st.integers(1, 3), st.integers(2, 2**31))
DEDUPLICATED = compiled(deduplicate_events(unbound("accepted_events")))
DEDUPLICATED_TWICE = compiled(deduplicate_events(deduplicate_events(unbound("accepted_events"))))


@settings(max_examples=30, deadline=None)
@given(st.lists(EVENT_AT, max_size=12, unique_by=lambda e: e[1:]))  # one event per input position
def test_deduplicate_keeps_the_first_of_each_event_and_is_idempotent(events):
    first = {}
    for event, file_seq, line in sorted(events, key=lambda e: e[1:]):
        first.setdefault(event, (event, file_seq, line))
    given_rows = [{"event_id": e, "file_seq": f, "source_line": n} for e, f, n in events]
    once = run(DEDUPLICATED, accepted_events=given_rows)
    assert [(r["event_id"], r["file_seq"], r["source_line"]) for r in once] == sorted(first.values())
    assert run(DEDUPLICATED_TWICE, accepted_events=given_rows) == once


def test_events_are_numbered_by_time_then_file_then_line():
    # Conversation 1: 9:00 first; the two 10:00 events in input order (file 1 line 7, then file 2
    # line 2). Conversation 2: a tie in the same file: line 4 before line 5. Numbers restart per conversation.
    events = table(
        "accepted_events",
        [
            {
                "event_id": "late-file",
                "conversation_id": 1,
                "event_at": at("2024-01-01 10:00"),
                "file_seq": 2,
                "source_line": 2,
            },
            {
                "event_id": "early-file",
                "conversation_id": 1,
                "event_at": at("2024-01-01 10:00"),
                "file_seq": 1,
                "source_line": 7,
            },
            {
                "event_id": "first",
                "conversation_id": 1,
                "event_at": at("2024-01-01 9:00"),
                "file_seq": 2,
                "source_line": 3,
            },
            {
                "event_id": "line-5",
                "conversation_id": 2,
                "event_at": at("2024-01-01 9:00"),
                "file_seq": 1,
                "source_line": 5,
            },
            {
                "event_id": "line-4",
                "conversation_id": 2,
                "event_at": at("2024-01-01 9:00"),
                "file_seq": 1,
                "source_line": 4,
            },
        ],
    )
    staged = rows(stg_conversation_events(events))
    assert sorted((r["conversation_id"], r["event_sequence"], r["event_id"]) for r in staged) == [
        (1, 1, "first"),
        (1, 2, "early-file"),
        (1, 3, "late-file"),
        (2, 1, "line-4"),
        (2, 2, "line-5"),
    ]
