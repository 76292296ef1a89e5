"""Incremental loads give exactly what one full rebuild gives, for any batching."""

import random
from datetime import datetime, timedelta

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, example, given, settings

from conftest import make_env, query, whole_build_examples, write_events
from convo.build import runner
from warehouse_snapshot import snapshot

START = datetime(2024, 5, 1, 8)
EVENT_KINDS = [
    "customer_message_received",
    "status_changed_to",
    "agent_assigned",
    "message_sent_to_customer",
    "tag_assigned",
]
STATUS_SPELLINGS = ["Open", "Waiting for customer", "Closed", " closed ", "OPEN", "waiting FOR customer"]
TAGS = ["payments", "login", "app_question", "refund_delay", "Payments"]


def _format(ts: datetime) -> str:
    return f"{ts:%Y-%m-%d} {ts.hour}:{ts:%M:%S}"


@st.composite
def event_rows(draw, max_conversations=4, max_events=7):
    """Raw rows for a few conversations; small time and value ranges so that ties and repeats happen."""
    rows = []
    for n in range(draw(st.integers(1, max_conversations))):
        conversation = str(30000000000000 + n)
        for _ in range(draw(st.integers(1, max_events))):
            kind = draw(st.sampled_from(EVENT_KINDS))
            agent = draw(st.sampled_from(["", "71", "72"])) if kind != "customer_message_received" else ""
            value = {
                "status_changed_to": lambda: draw(st.sampled_from(STATUS_SPELLINGS)),
                "agent_assigned": lambda: draw(st.sampled_from(["71", "72", "73"])),
                "tag_assigned": lambda: draw(st.sampled_from(TAGS)),
            }.get(kind, lambda: "<message>")()
            ts = START + timedelta(minutes=draw(st.integers(0, 3 * 24 * 60 // 30)) * 30)
            user = draw(st.sampled_from(["501", "502", "503"]))
            rows.append((_format(ts), conversation, user, agent, kind, value))
    return rows


@st.composite
def batchings(draw):
    """Events, and batches of them: random subsets in random order, overlapping, sometimes repeated."""
    rows = draw(event_rows())
    batches = []
    for _ in range(draw(st.integers(1, 3))):
        picked = draw(st.lists(st.sampled_from(range(len(rows))), min_size=1, max_size=len(rows)))
        batches.append([rows[i] for i in picked])
    # Every event arrives at least once; what is left comes last (late for its conversation).
    seen = {i for b in batches for i in range(len(b))}
    leftover = [r for r in rows if not any(r in b for b in batches)]
    if leftover or not seen:
        batches.append(leftover or rows)
    if draw(st.booleans()):
        batches.insert(draw(st.integers(0, len(batches))), batches[draw(st.integers(0, len(batches) - 1))])
    return batches


def _files(tmp, batches):
    return [str(write_events(tmp / f"batch_{i:02d}.csv", b)) for i, b in enumerate(batches)]


def _assert_batch_by_batch_equals_full_rebuild(tmp, batches) -> None:
    files = _files(tmp, batches)
    incremental, full = make_env(tmp, "incremental"), make_env(tmp, "full")
    for f in files:
        runner.build(incremental, [f])
    runner.build(full, files)
    # Load-time columns aside, ingested_files differs only in which build ingested a file.
    exclude = {"ingested_files": {"run_id"}}
    expected = snapshot(full.warehouse, exclude)
    assert snapshot(incremental.warehouse, exclude) == expected
    runner.build(incremental, [], full_refresh=True)
    assert snapshot(incremental.warehouse, exclude) == expected


def _row(day: int, hour: int, conversation: int, user: str, agent: str, kind: str, value: str) -> tuple:
    return (f"2024-05-0{day} {hour}:00:00", str(30000000000000 + conversation), user, agent, kind, value)


OPENED = _row(1, 8, 1, "501", "", "customer_message_received", "<m>")
ASSIGNED = _row(1, 9, 1, "501", "71", "agent_assigned", "72")
TAGGED = _row(1, 9, 1, "501", "71", "tag_assigned", "Payments")  # ties with ASSIGNED
CLOSED = _row(2, 10, 1, "501", "72", "status_changed_to", " closed ")
REOPENED = _row(3, 8, 1, "502", "", "customer_message_received", "<m>")
OTHER = _row(2, 9, 2, "503", "", "customer_message_received", "<m>")
OTHER_WAITING = _row(2, 11, 2, "503", "73", "status_changed_to", "waiting FOR customer")
# Overlapping batches, one of them given twice, and the first events of a conversation last.
OVERLAPPING_REPEATED_LATE = [
    [CLOSED, OTHER],
    [REOPENED, CLOSED, TAGGED],
    [CLOSED, OTHER],
    [OPENED, ASSIGNED, OTHER_WAITING],
]


@pytest.mark.slow  # several builds per example
@settings(max_examples=whole_build_examples(3), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=batchings())
@example(batches=[[e] for e in (REOPENED, CLOSED, ASSIGNED, OPENED)])  # one event per build, newest first
@example(batches=OVERLAPPING_REPEATED_LATE)
def test_batch_by_batch_equals_full_rebuild(tmp_path_factory, batches):
    _assert_batch_by_batch_equals_full_rebuild(tmp_path_factory.mktemp("batches"), batches)


def test_late_event_changes_a_conversation_as_a_rebuild_would(tmp_path):
    conversation = "30000000000001"
    day1 = [
        ("2024-05-02 9:00:00", conversation, "501", "", "customer_message_received", "<m>"),
        ("2024-05-02 9:30:00", conversation, "501", "71", "status_changed_to", "Closed"),
    ]
    # Arrives later but happened earlier: another user's first message, and an agent assignment.
    day2 = [
        ("2024-05-01 8:00:00", conversation, "502", "", "customer_message_received", "<m>"),
        ("2024-05-01 8:05:00", conversation, "502", "72", "agent_assigned", "73"),
    ]
    env = make_env(tmp_path, "late")
    f1, f2 = (str(write_events(tmp_path / n, rows)) for n, rows in (("d1.csv", day1), ("d2.csv", day2)))
    runner.build(env, [f1])
    before = query(env, "SELECT * FROM fact_conversations")[0]
    runner.build(env, [f2])
    after = query(env, "SELECT * FROM fact_conversations")[0]
    assert (before["user_id"], before["conversation_started_at"], before["number_involved_agents"]) == (
        501,
        datetime(2024, 5, 2, 9),
        1,
    )
    assert (after["user_id"], after["conversation_started_at"], after["number_involved_agents"]) == (
        502,
        datetime(2024, 5, 1, 8),
        3,
    )
    assert after["conversation_status"] == "CLOSED"
    assert after["last_event_at"] == datetime(2024, 5, 2, 9, 30)  # event time, not load time
    assert after["updated_at"] > before["updated_at"]  # load time
    users = {u["id"]: u["conversation_count"] for u in query(env, "SELECT * FROM dim_user")}
    assert users == {501: 0, 502: 1}
    full = make_env(tmp_path, "full")
    runner.build(full, [f1, f2])
    assert snapshot(env.warehouse, {"ingested_files": {"run_id"}}) == snapshot(
        full.warehouse, {"ingested_files": {"run_id"}}
    )


def test_updated_at_moves_only_for_changed_rows(tmp_path):
    env = make_env(tmp_path)
    a = [
        ("2024-05-02 9:00:00", "30000000000001", "501", "", "customer_message_received", "<m>"),
        ("2024-05-02 9:00:00", "30000000000002", "502", "", "customer_message_received", "<m>"),
    ]
    b = [("2024-05-02 10:00:00", "30000000000002", "502", "71", "message_sent_to_customer", "<m>")]
    runner.build(env, [str(write_events(tmp_path / "a.csv", a))])
    first = {r["conversation_id"]: r["updated_at"] for r in query(env, "SELECT * FROM fact_conversations")}
    runner.build(env, [str(write_events(tmp_path / "b.csv", b))])
    second = {r["conversation_id"]: r["updated_at"] for r in query(env, "SELECT * FROM fact_conversations")}
    assert second[30000000000001] == first[30000000000001]
    assert second[30000000000002] > first[30000000000002]


def test_same_file_again_is_a_noop_that_says_so(tmp_path):
    env = make_env(tmp_path)
    events = str(
        write_events(
            tmp_path / "e.csv",
            [("2024-05-02 9:00:00", "30000000000001", "501", "", "customer_message_received", "<m>")],
        )
    )
    runner.build(env, [events])
    before = snapshot(env.warehouse)
    run = runner.build(env, [events])
    assert run.status == "noop"
    assert run.files[0].action.startswith("skipped: same content already ingested by run 1")
    assert snapshot(env.warehouse) == before
    # The same content under another name is recognised too.
    copy = tmp_path / "copy.csv"
    copy.write_bytes((tmp_path / "e.csv").read_bytes())
    assert runner.build(env, [str(copy)]).status == "noop"


def test_overlapping_files_are_deduplicated_by_row(tmp_path):
    env = make_env(tmp_path)
    shared = ("2024-05-02 9:00:00", "30000000000001", "501", "", "customer_message_received", "<m>")
    other = ("2024-05-02 9:10:00", "30000000000001", "501", "71", "message_sent_to_customer", "<m>")
    runner.build(env, [str(write_events(tmp_path / "1.csv", [shared]))])
    run = runner.build(env, [str(write_events(tmp_path / "2.csv", [other, shared]))])
    f = run.files[0]
    assert (f.rows_read, f.rows_staged, f.rows_rejected, f.duplicates_removed) == (2, 1, 0, 1)
    assert query(env, "SELECT count(*) AS n FROM stg_conversation_events") == [{"n": 2}]


def test_shuffled_input_gives_the_same_tables(tmp_path):
    # No two events of a conversation share a timestamp here, so input order cannot matter.
    values = {
        "status_changed_to": ["Open", "Waiting for customer", " closed"],
        "agent_assigned": ["72", "73", "71"],
        "tag_assigned": ["login", "Payments", "app_question"],
    }
    rows = []
    for n in range(6):
        for i in range(8):
            kind = EVENT_KINDS[(i + n) % 5]
            value = values.get(kind, ["<m>"] * 3)[(i * n) % 3]
            agent = "" if kind == "customer_message_received" else "71"
            rows.append(
                (
                    _format(START + timedelta(minutes=7 * i + n)),
                    str(30000000000000 + n),
                    str(500 + n % 3),
                    agent,
                    kind,
                    value,
                )
            )
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    a, b = make_env(tmp_path, "a"), make_env(tmp_path, "b")
    runner.build(a, [str(write_events(tmp_path / "a.csv", rows))])
    runner.build(b, [str(write_events(tmp_path / "b.csv", shuffled))])
    where_read = {
        "stg_conversation_events": {"source_file", "source_line"},
        "ingested_files": {"path", "sha256", "run_id"},
    }
    assert snapshot(a.warehouse, where_read) == snapshot(b.warehouse, where_read)
