"""The evaluator (`build/evaluate.py`) on its own: each strategy on a tiny real DuckDB file.

No runner, lock, Great Expectations or input file: the new accepted events go straight into the
scratch table ingestion would write (`batch_events`), and each step is given by hand, as the plan
would give it. Version 1 is a first build (every table inserted whole); the tests then evaluate
version 2 and compare the typed result and the stored rows with answers worked out by hand.

Events are (id, conversation, time, event, value); user 7 and agent 9 throughout.
"""

from __future__ import annotations

import datetime
import tempfile
import uuid
from pathlib import Path

import ibis
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convo.build import evaluate
from convo.build.evaluate import STAGED, Kept, Recomputed, ScopedView, ScratchTable, Staged
from convo.build.plan import ByPartition, Change, PartitionSource, Step, Unchanged, Whole
from convo.engine.store import FROM, TO, Store
from convo.engine.warehouse import STORE, WORK, Warehouse
from convo.models.registry import models
from convo.models.staging import RAW_COLUMNS, accepted_events, parse_raw_events
from convo.models.vocabulary import TAG_ASSIGNED

TAGS, EVENTS_VIEW, DIM_TAG, SEED = (
    "fact_conversation_tags",
    "fact_conversation_events",
    "dim_tag",
    "seed_tag_contact_reasons",
)
MESSAGE = "customer_message_received"
BY_CONVERSATION = ByPartition((PartitionSource(evaluate.EVENTS, ("conversation_id",)),))
BY_STAGED = ByPartition((PartitionSource(STAGED, ("conversation_id",)),))  # read from its delta
# The accepted events as ingestion types them: the staging functions applied to raw text.
RAW = ibis.table(
    {**dict.fromkeys(RAW_COLUMNS, "string"), "source_file": "string", "source_line": "int64", "file_seq": "int64"},
    name="raw",
)
WINDOW = (datetime.datetime(2016, 1, 1), datetime.datetime(2099, 12, 31))
ACCEPTED = accepted_events(parse_raw_events(RAW, WINDOW)).schema()

# Version 1: conversation 1 (a message, then "login" at 9:05), conversation 2 (a message).
FIRST = [
    (1, 1, "2024-01-01 09:00", MESSAGE, "hi"),
    (2, 1, "2024-01-01 09:05", TAG_ASSIGNED, "login"),
    (3, 2, "2024-01-01 10:00", MESSAGE, "hello"),
]
MAPPING = [("login", "Cannot log in", "Account")]


@pytest.fixture
def store(tmp_path):
    s = Store(Warehouse(tmp_path / "w.duckdb", threads=1, memory_limit="500MB"))
    yield s
    s.wh.close()


def _staged(store: Store, events: list[tuple], files: int = 1) -> Staged:
    """The scratch tables ingestion hands over: `events` accepted, one file per event read, no reject."""
    rows = [
        {
            "event_id": uuid.UUID(int=event_id).bytes,
            "conversation_id": conversation,
            "event_at": datetime.datetime.fromisoformat(at),
            "user_id": 7,
            "agent_id": 9,
            "event": event,
            "event_value": value,
            "source_file": "e.csv",
            "source_line": line,
            "file_seq": files,
        }
        for line, (event_id, conversation, at, event, value) in enumerate(events, start=2)
    ]
    columns = {c: [r.get(c) for r in rows] for c in ACCEPTED.names}
    store.wh.materialize("batch_events", ibis.memtable(pa.table(columns, schema=ACCEPTED.to_pyarrow())))
    store.wh.execute(
        f"CREATE OR REPLACE TEMP TABLE {WORK}.batch_files (file_id BIGINT, path VARCHAR, rows_read BIGINT)"
    )
    store.wh.execute(f"INSERT INTO {WORK}.batch_files VALUES (?, ?, ?)", [files, "e.csv", len(events)])
    store.wh.execute(f"CREATE OR REPLACE TEMP TABLE {WORK}.batch_rejected (file_id BIGINT, reason VARCHAR)")
    return Staged(
        events=ScratchTable("batch_events"),
        rows=len(events),
        files=ScratchTable("batch_files"),
        rejected=ScratchTable("batch_rejected"),
        snapshot=None,
    )


def _mapping(rows: list[tuple]) -> ibis.Table:
    return ibis.memtable({c: [r[i] for r in rows] for i, c in enumerate(("tag", "contact_reason", "category"))})


def _step(name: str, recompute) -> Step:
    return Step(models()[name], recompute)


def _first_build(store: Store) -> None:
    """Version 1: the ingestion records appended, the seed and every table below inserted whole."""
    ev = evaluate.Evaluation(store, 1, _staged(store, FIRST))
    evaluate.append_ingested(ev)
    evaluate.merge_seed(ev, SEED, _mapping(MAPPING), key=("tag",))
    for name in (STAGED, TAGS, DIM_TAG):
        evaluate.evaluate(ev, _step(name, Whole("never written", from_empty=True)))


def _live(store: Store, table: str, columns: str) -> list[tuple]:
    return sorted(store.wh.execute(f'SELECT {columns} FROM {STORE}."{table}" WHERE {TO} IS NULL'))


def _values(store: Store, table: ScratchTable) -> list:
    return sorted(v for (v,) in store.wh.execute(f"SELECT value FROM {table.sql}"))


def test_a_table_never_written_is_inserted_whole_without_a_copy(store):
    ev = evaluate.Evaluation(store, 1, _staged(store, FIRST))
    assert ev.changes() == {evaluate.EVENTS: Change.ROWS}
    result = evaluate.evaluate(ev, _step(STAGED, Whole("never written", from_empty=True)))
    assert isinstance(result, Recomputed)
    assert (result.partitions, result.recomputed, result.live_rows) == (None, None, 3)
    assert (result.delta.inserted, result.delta.retired, result.delta.everything) == (3, 0, True)
    assert result.change is Change.WHOLE and ev.changes()[STAGED] is Change.WHOLE
    # Each conversation's events numbered by time.
    assert _live(store, STAGED, "conversation_id, event_sequence, event_value") == [
        (1, 1, "hi"),
        (1, 2, "login"),
        (2, 1, "hello"),
    ]


def test_by_partition_recomputes_every_row_of_the_changed_conversations_only(store):
    _first_build(store)
    # A late message of conversation 1 (8:55, before its others) and a new conversation 3.
    late = [(4, 1, "2024-01-01 08:55", MESSAGE, "early"), (5, 3, "2024-01-02 11:00", MESSAGE, "new")]
    ev = evaluate.Evaluation(store, 2, _staged(store, late, files=2))
    result = evaluate.evaluate(ev, _step(STAGED, BY_CONVERSATION))

    assert isinstance(result, Recomputed) and result.name == STAGED
    assert _values(store, result.partitions) == [1, 3]  # conversation 2 is not recomputed
    # Conversation 1 renumbered: the late event is 1st; "hi" moves 1 -> 2 and "login" 2 -> 3, so
    # their two rows are retired and three inserted; conversation 3's one row inserted.
    assert (result.delta.inserted, result.delta.retired, result.delta.everything) == (4, 2, False)
    assert result.live_rows == 5 and result.change is Change.ROWS
    assert store.wh.scalar(f"SELECT count(*) FROM {result.recomputed.sql}") == 4  # its rows there
    assert _live(store, STAGED, "conversation_id, event_sequence, event_value, " + FROM) == [
        (1, 1, "early", 2),
        (1, 2, "hi", 2),
        (1, 3, "login", 2),
        (2, 1, "hello", 1),  # untouched: still the row version 1 wrote
        (3, 1, "new", 2),
    ]
    # Downstream, by the partitions of the staged events' delta: the tag bridge of conversation 1
    # is recomputed, and unchanged ("login" first assigned at 9:05, once).
    tags = evaluate.evaluate(ev, _step(TAGS, BY_STAGED))
    assert isinstance(tags, Recomputed) and _values(store, tags.partitions) == [1, 3]
    assert (tags.delta.inserted, tags.delta.retired, tags.live_rows, tags.change) == (0, 0, 1, None)
    assert TAGS not in ev.changes()


def test_a_recomputation_that_changes_no_row_leaves_the_models_reading_it_kept(store):
    _first_build(store)
    ev = evaluate.Evaluation(store, 2, _staged(store, [(6, 2, "2024-01-01 10:30", MESSAGE, "more")], files=2))
    staged = evaluate.evaluate(ev, _step(STAGED, BY_CONVERSATION))
    assert (staged.delta.inserted, staged.delta.retired) == (1, 0)  # conversation 2's 2nd event
    # Conversation 2 has no tag: its bridge is recomputed and comes out as it was (none).
    tags = evaluate.evaluate(ev, _step(TAGS, BY_STAGED))
    assert isinstance(tags, Recomputed) and _values(store, tags.partitions) == [2]
    assert (tags.delta.inserted, tags.delta.retired, tags.change) == (0, 0, None)
    # So a model reading the bridge by partition finds no partition to recompute.
    by_tags = ByPartition((PartitionSource(TAGS, ("conversation_id",)),))
    assert evaluate.evaluate(ev, _step("int_conversation_tags", by_tags)) == Kept("int_conversation_tags")
    assert evaluate.evaluate(ev, _step(DIM_TAG, Unchanged())) == Kept(DIM_TAG)
    assert ev.changes() == {evaluate.EVENTS: Change.ROWS, STAGED: Change.ROWS}
    assert _live(store, TAGS, f"conversation_id, tag, {FROM}") == [(1, "login", 1)]


def test_a_view_stores_nothing_and_names_the_partitions_to_audit(store):
    _first_build(store)
    ev = evaluate.Evaluation(store, 2, _staged(store, [(6, 2, "2024-01-01 10:30", MESSAGE, "more")], files=2))
    evaluate.evaluate(ev, _step(STAGED, BY_CONVERSATION))
    scoped = evaluate.evaluate(ev, _step(EVENTS_VIEW, BY_STAGED))
    assert isinstance(scoped, ScopedView) and scoped.name == EVENTS_VIEW
    assert _values(store, scoped.partitions) == [2]
    assert scoped.from_recomputed  # the staged events' recomputed rows cover conversation 2
    assert evaluate.evaluate(ev, _step(EVENTS_VIEW, Whole("full refresh"))) == ScopedView(EVENTS_VIEW, None, False)
    assert not store.wh.has_table(EVENTS_VIEW, STORE) and EVENTS_VIEW not in ev.changes()


def test_a_table_without_partitions_is_recomputed_whole_and_merged(store):
    _first_build(store)
    assert _live(store, DIM_TAG, "tag, contact_reason, category") == [("login", "Cannot log in", "Account")]
    ev = evaluate.Evaluation(store, 2, None)
    # The mapping renames login's reason and adds "refund": one row retired, two inserted.
    mapping = [("login", "Sign-in problem", "Account"), ("refund", "Refund", "Billing")]
    seed = evaluate.merge_seed(ev, SEED, _mapping(mapping), key=("tag",))
    assert (seed.delta.inserted, seed.delta.retired, seed.live_rows, seed.change) == (2, 1, 2, Change.ROWS)
    result = evaluate.evaluate(ev, _step(DIM_TAG, Whole("seed_tag_contact_reasons changed")))
    assert isinstance(result, Recomputed) and result.partitions is None
    assert result.recomputed == ScratchTable(f"new_{DIM_TAG}")  # compared with the live rows: merged
    assert (result.delta.inserted, result.delta.retired, result.delta.everything) == (2, 1, False)
    assert _live(store, DIM_TAG, f"tag, contact_reason, category, {FROM}") == [
        ("login", "Sign-in problem", "Account", 2),
        ("refund", "Refund", "Billing", 2),
    ]
    # Version 1 still reads the old mapping.
    assert store.wh.execute(f'SELECT contact_reason FROM {STORE}."{DIM_TAG}" WHERE {FROM} <= 1 AND {TO} = 2') == [
        ("Cannot log in",)
    ]


def test_a_seed_equal_to_the_stored_one_changes_nothing(store):
    _first_build(store)
    ev = evaluate.Evaluation(store, 2, None)
    seed = evaluate.merge_seed(ev, SEED, _mapping(MAPPING), key=("tag",))
    assert (seed.delta.inserted, seed.delta.retired, seed.live_rows, seed.change) == (0, 0, 1, None)
    assert ev.changes() == {}


def test_ingestion_records_are_appended_with_their_version_and_never_rewritten(store):
    _first_build(store)
    staged = _staged(store, [(7, 4, "2024-01-03 12:00", MESSAGE, "x")], files=2)
    store.wh.execute(f"INSERT INTO {WORK}.batch_rejected VALUES (2, 'event is empty')")
    evaluate.append_ingested(evaluate.Evaluation(store, 2, staged))
    assert _live(store, "ingested_files", f"file_id, rows_read, {FROM}") == [(1, 3, 1), (2, 1, 2)]
    assert _live(store, "rejected_conversation_events", f"file_id, reason, {FROM}") == [(2, "event is empty", 2)]


@settings(max_examples=10, deadline=None)
@given(events=st.lists(st.tuples(st.integers(1, 3), st.integers(0, 3)), min_size=1, max_size=10), data=st.data())
def test_a_second_batch_by_partition_numbers_each_conversation_as_a_replay_does(events, data):
    """Events (conversation, minute) split into two files: the first inserted whole (version 1),
    the second merged by partition (version 2). Each conversation's live events are numbered by
    time, then file, then line, as a plain replay of both files numbers them; a conversation the
    second file leaves out keeps the rows version 1 wrote."""
    first = data.draw(st.integers(1, len(events)), label="events in the first file")
    files = [
        [(n, c, f"2024-01-01 09:0{minute}", MESSAGE, str(n)) for n, (c, minute) in enumerate(events, start=1)][part]
        for part in (slice(None, first), slice(first, None))
    ]
    replay: dict[int, list] = {}
    for file, rows in enumerate(files, start=1):
        for line, (n, c, at, *_) in enumerate(rows, start=2):
            replay.setdefault(c, []).append((at, file, line, n))
    expected = sorted((c, i, n) for c, rows in replay.items() for i, (*_, n) in enumerate(sorted(rows), start=1))
    in_second = {c for _, c, *_ in files[1]}
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Warehouse(Path(folder) / "w.duckdb", threads=1, memory_limit="500MB"))
        try:
            for version, recompute in ((1, Whole("never written", from_empty=True)), (2, BY_CONVERSATION)):
                ev = evaluate.Evaluation(store, version, _staged(store, files[version - 1], files=version))
                evaluate.evaluate(ev, _step(STAGED, recompute))
            found = _live(store, STAGED, f"conversation_id, event_sequence, event_value, {FROM}")
        finally:
            store.wh.close()
    assert sorted((c, i, int(v)) for c, i, v, _ in found) == expected
    assert all(written == 1 for c, _, _, written in found if c not in in_second)
