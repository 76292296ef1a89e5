"""Staging layer: raw event text -> typed, trimmed, de-duplicated, ordered events.

`parse_raw_events` and `deduplicate_events` are used by ingestion, row by row, before events
are stored; `stg_conversation_events` is the staged-event model the rest of the DAG reads.
"""

from __future__ import annotations

import datetime

import ibis
import ibis.expr.types as ir
from ibis import _

from convo.models.functions import (
    INTEGER_PATTERN,
    TIMESTAMP_FORMAT,
    contains_nul,
    md5_uuid,
    parse_timestamp,
    strip_whitespace,
)
from convo.models.registry import model
from convo.models.vocabulary import AGENT_ASSIGNED, STATUS_CHANGE, STATUS_VALUES, TAG_ASSIGNED

RAW_COLUMNS = ("event_timestamp", "conversation_id", "user_id", "agent_id", "event", "event_value")

# Longer field values are rejected: no id, timestamp, event name, status or tag is near this long,
# and a message this long is a dump, not a conversation (a reader would have to scroll past it).
MAX_FIELD_CHARS = 65_536
IDS = ("conversation_id", "user_id", "agent_id")

# Where the input order of an event comes from: files in ingestion order, then line in file.
INPUT_ORDER = ("file_seq", "source_line")
_LINES_PER_FILE = 2**32  # above any line number, so file_seq * it + source_line keeps the input order


def _quoted(text: ir.StringValue) -> ir.StringValue:
    return "'" + text + "'"


def _reason(condition: ir.BooleanValue, message: ir.StringValue | str) -> ir.StringValue:
    return ibis.ifelse(condition, message, ibis.null("string"))


def _trimmed(raw: ir.Table) -> ir.Table:
    """Each raw field trimmed (empty -> NULL) as `_<field>`, the event name lower-cased.

    A step of its own because every rule reads these values: the engine does not reuse a
    repeated string expression by itself, and trimming is the costly part of parsing.
    """
    t = raw.mutate(**{f"_{c}": strip_whitespace(raw[c]).nullif("") for c in RAW_COLUMNS})
    return t.mutate(_event=t._event.lower())


def _whole_numbers(t: ir.Table) -> ir.Table:
    """`_<id>_is_whole`: whether each id's text is a whole number, matched once and read by both its
    value and its reasons (the engine would otherwise match the pattern once per use)."""
    return t.mutate(**{f"_{c}_is_whole": t[f"_{c}"].re_search(INTEGER_PATTERN) for c in IDS})


def _as_integer(text: ir.StringValue, is_whole: ir.BooleanValue) -> ir.IntegerValue:
    """The text's BIGINT when it is a whole number (a cast alone also reads '1e3' and '1_000')."""
    return ibis.ifelse(is_whole, text.try_cast("int64"), ibis.null("int64"))


def _typed(t: ir.Table) -> ir.Table:
    value = t._event_value
    return t.mutate(
        event_at=parse_timestamp(t._event_timestamp),
        **{f"{c}_typed": _as_integer(t[f"_{c}"], t[f"_{c}_is_whole"]) for c in IDS},
        event_typed=t._event,
        event_value_typed=ibis.cases(
            (t._event == STATUS_CHANGE, value.upper()), (t._event == TAG_ASSIGNED, value.lower()), else_=value
        ),
        assigned_agent_id=ibis.ifelse(
            t._event == AGENT_ASSIGNED, _as_integer(value, value.re_search(INTEGER_PATTERN)), ibis.null("int64")
        ),
    )


def _id_reasons(t: ir.Table, column: str) -> list[ir.StringValue]:
    text, typed = t[f"_{column}"], t[f"{column}_typed"]
    quoted = _quoted(text)
    whole_number = t[f"_{column}_is_whole"]
    return [
        _reason(text.notnull() & ~whole_number, f"{column} " + quoted + " is not an integer"),
        _reason(whole_number & typed.isnull(), f"{column} " + quoted + " is too large for a 64-bit integer"),
        # Upstream systems write 0 or -1 for "unknown": staged, it would join unrelated rows.
        _reason(typed <= 0, f"{column} " + quoted + " is not a positive integer"),
    ]


def _reject_reasons(t: ir.Table, window: tuple[datetime.datetime, datetime.datetime]) -> ir.StringValue:
    """Every reason the row cannot be staged, joined by '; '; NULL when there is none."""
    is_status, is_tag = t._event == STATUS_CHANGE, t._event == TAG_ASSIGNED
    earliest, latest = window
    shown = " to ".join(ts.strftime(TIMESTAMP_FORMAT) for ts in window)
    reasons = [
        *(
            _reason(t[c].length() > MAX_FIELD_CHARS, f"{c} is longer than {MAX_FIELD_CHARS} characters")
            for c in RAW_COLUMNS
        ),
        # NUL is no text: many tools cut a value at it, or refuse it.
        *(_reason(contains_nul(t[c]), f"{c} contains a NUL character") for c in RAW_COLUMNS),
        _reason(t._event_timestamp.isnull(), "event_timestamp is empty"),
        _reason(
            t._event_timestamp.notnull() & t.event_at.isnull(),
            "event_timestamp " + _quoted(t._event_timestamp) + " is not a timestamp like 2019-04-04 1:18:45",
        ),
        _reason(
            (t.event_at < earliest) | (t.event_at > latest),
            "event_timestamp " + _quoted(t._event_timestamp) + f" is outside the accepted window {shown}"
            " (event_window in convo.toml)",
        ),
        *(_reason(t[f"_{c}"].isnull(), f"{c} is empty") for c in ("conversation_id", "user_id")),
        *(reason for c in IDS for reason in _id_reasons(t, c)),
        _reason(t._event.isnull(), "event is empty"),
        _reason(
            (t._event == AGENT_ASSIGNED) & (t.assigned_agent_id.isnull() | (t.assigned_agent_id <= 0)),
            "agent_assigned value " + _quoted(t._event_value.fill_null("")) + " is not an agent id",
        ),
        _reason(is_status & t._event_value.isnull(), "status_changed_to has no status value"),
        _reason(
            is_status & t._event_value.notnull() & ~t.event_value_typed.isin(STATUS_VALUES),
            "status_changed_to value " + _quoted(t._event_value) + f" is not one of {', '.join(STATUS_VALUES)}",
        ),
        _reason(is_tag & t._event_value.isnull(), "tag_assigned has no tag"),
    ]
    return ibis.literal("; ").join(reasons).nullif("")


def _event_id(t: ir.Table) -> ir.UUIDValue:
    """The stable id of an accepted event: the MD5 of its six fields after typing and trimming.

    Two rows are the same event exactly when those six values are equal, so the same event gets the
    same id in every load. Stored as a UUID, whose 32 hex digits are the MD5's.
    """
    identity = ibis.literal("\x1f").join(
        [
            t.event_at.strftime(TIMESTAMP_FORMAT),
            t.conversation_id_typed.cast("string"),
            t.user_id_typed.cast("string"),
            t.agent_id_typed.cast("string").fill_null(""),
            t.event_typed,
            t.event_value_typed.fill_null(""),
        ]
    )
    return md5_uuid(identity)


def parse_raw_events(raw: ir.Table, window: tuple[datetime.datetime, datetime.datetime]) -> ir.Table:
    """Type and normalise raw events; `reject_reason` says why a row cannot be staged (NULL if it can),
    `event_id` identifies a row that can (NULL if it cannot).

    `raw` has the six raw columns as text plus `source_file`, `source_line` and `file_seq`;
    `window` holds the first and last accepted event time (`EventWindow.bounds`). The id is hashed
    here, in the one pass over the rows that types them, so that no later step writes or reads the
    accepted rows again only to add it.
    """
    t = _typed(_whole_numbers(_trimmed(raw)))
    t = t.mutate(reject_reason=_reject_reasons(t, window))
    return t.select(
        "source_file",
        "source_line",
        "file_seq",
        *RAW_COLUMNS,
        "event_at",
        "conversation_id_typed",
        "user_id_typed",
        "agent_id_typed",
        "event_typed",
        "event_value_typed",
        "assigned_agent_id",
        "reject_reason",
        event_id=ibis.ifelse(t.reject_reason.isnull(), _event_id(t), ibis.null("uuid")),
    )


def accepted_events(parsed: ir.Table) -> ir.Table:
    """Rows of `parse_raw_events` that can be staged, with their `event_id`."""
    ok = parsed.filter(parsed.reject_reason.isnull())
    return ok.select(
        event_id=ok.event_id,
        conversation_id=ok.conversation_id_typed,
        event_at=ok.event_at,
        user_id=ok.user_id_typed,
        agent_id=ok.agent_id_typed,
        event=ok.event_typed,
        event_value=ok.event_value_typed,
        assigned_agent_id=ok.assigned_agent_id,
        source_file=ok.source_file,
        source_line=ok.source_line,
        file_seq=ok.file_seq,
    )


def _input_position(events: ir.Table) -> ir.IntegerValue:
    return events.file_seq * _LINES_PER_FILE + events.source_line  # input order as one number


def repeated_events(events: ir.Table) -> ir.Table:
    """The events seen more than once (`event_id`), with the input position of their first occurrence
    (`first_position`): one hash aggregation, whose result is small, since duplicates are rare."""
    return (
        events.mutate(position=_input_position(events))
        .group_by("event_id")
        .aggregate(first_position=_.position.min(), occurrences=_.count())
        .filter(_.occurrences > 1)
        .drop("occurrences")
    )


def first_occurrences(events: ir.Table, repeated: ir.Table) -> ir.Table:
    """`events` without the later copies of the events in `repeated` (`repeated_events` of them): a
    join with that small table, so the events are neither sorted nor copied."""
    marked = events.left_join(repeated, "event_id").mutate(position=_input_position(events))
    return marked.filter(marked.first_position.isnull() | (marked.position == marked.first_position)).select(
        *events.columns
    )


def deduplicate_events(events: ir.Table) -> ir.Table:
    """Keep each event once: its first occurrence in input order."""
    return first_occurrences(events, repeated_events(events))


@model(partition="conversation_id", scope={"accepted_events": ("conversation_id",)})
def stg_conversation_events(accepted_events: ir.Table) -> ir.Table:
    """Staged events with their position in the conversation (time, then input order)."""
    order = [_.event_at, *(_[c] for c in INPUT_ORDER)]
    position = ibis.row_number().over(group_by="conversation_id", order_by=order) + 1
    return accepted_events.mutate(event_sequence=position.cast("int64")).select(
        "event_id",
        "conversation_id",
        "event_sequence",
        "event_at",
        "user_id",
        "agent_id",
        "event",
        "event_value",
        "assigned_agent_id",
        "source_file",
        "source_line",
        "file_seq",
    )
