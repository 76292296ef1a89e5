"""Event ids and the cheap forms of the parsing rules: what the faster staging SQL must still mean."""

import hashlib
import string
import uuid

import ibis
from hypothesis import given
from hypothesis import strategies as st

from conftest import make_env, query, write_events
from convo.build import runner
from convo.models.functions import contains_nul, md5_uuid, strip_whitespace

CONVERSATION = "30000000000001"


def _md5_uuid(identity: str) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(identity.encode()).hexdigest())


def test_the_event_id_is_the_md5_of_the_six_typed_fields_stored_as_a_uuid(tmp_path):
    # Typed and trimmed: the time with two-digit hours, the ids as numbers, the event lower-case,
    # a status upper-case; an empty agent and value are empty text. Fields joined by \x1f.
    rows = [
        (" 2024-05-02 9:00:00 ", " +30000000000001", "0501", "", "Customer_Message_Received", " <m> "),
        ("2024-05-02 9:05:00", CONVERSATION, "501", "7", "status_changed_to", "closed"),
    ]
    env = make_env(tmp_path)
    runner.build(env, [str(write_events(tmp_path / "e.csv", rows))])
    staged = query(env, "SELECT source_line, event_id, typeof(event_id) AS type FROM stg_conversation_events")
    assert {r["type"] for r in staged} == {"UUID"}
    ids = {r["source_line"]: r["event_id"] for r in staged}
    joined = "\x1f".join
    assert ids == {
        2: _md5_uuid(joined(["2024-05-02 09:00:00", CONVERSATION, "501", "", "customer_message_received", "<m>"])),
        3: _md5_uuid(joined(["2024-05-02 09:05:00", CONVERSATION, "501", "7", "status_changed_to", "CLOSED"])),
    }
    # Its text is the MD5's 32 hex digits in a UUID's groups.
    shown = query(env, "SELECT event_id::VARCHAR AS id FROM stg_conversation_events WHERE source_line = 2")[0]["id"]
    assert (
        shown.replace("-", "")
        == hashlib.md5(
            joined(["2024-05-02 09:00:00", CONVERSATION, "501", "", "customer_message_received", "<m>"]).encode()
        ).hexdigest()
    )


def test_an_event_loaded_again_in_a_later_build_keeps_its_id_and_is_counted_as_a_duplicate(tmp_path):
    first = [("2024-05-02 9:00:00", CONVERSATION, "501", "", "tag_assigned", "Login")]
    again = [
        ("2024-05-02 09:00:00", CONVERSATION, "501", "", "TAG_ASSIGNED", "login "),  # the same event
        ("2024-05-02 9:01:00", CONVERSATION, "501", "", "tag_assigned", "login"),  # a new one
    ]
    env = make_env(tmp_path)
    runner.build(env, [str(write_events(tmp_path / "a.csv", first))])
    before = query(env, "SELECT event_id FROM stg_conversation_events")
    run = runner.build(env, [str(write_events(tmp_path / "b.csv", again))])
    f = run.files[0]
    assert (f.rows_read, f.rows_staged, f.rows_rejected, f.duplicates_removed) == (2, 1, 0, 1)
    after = query(env, "SELECT event_id, source_file FROM stg_conversation_events ORDER BY event_sequence")
    assert after[0]["event_id"] == before[0]["event_id"] and after[0]["source_file"].endswith("a.csv")
    assert len({r["event_id"] for r in after}) == 2


# -- the cheap SQL forms of the rules, against Python's own -------------------------------------------
_con = ibis.duckdb.connect()
# Text that reaches both branches of the trim: whitespace and other control characters at either
# end, NUL, non-ASCII, a prepend character (U+0600) and a combining mark before trailing space.
_text = st.text(st.sampled_from([*string.whitespace, "\x00", "\x01", "a", " ", "é", "\u0600", "\u0301", "𝄞"]))


@given(st.lists(_text, min_size=1, max_size=20))
def test_trimming_in_sql_is_pythons_strip_of_whitespace(values):
    t = ibis.memtable({"text": values}, schema={"text": "string"})
    got = _con.execute(t.select(trimmed=strip_whitespace(t.text), nul=contains_nul(t.text)))
    assert list(got["trimmed"]) == [v.strip(string.whitespace) for v in values]
    assert list(got["nul"]) == ["\x00" in v for v in values]


@given(st.lists(st.text(), min_size=1, max_size=20))
def test_md5_uuid_in_sql_is_the_md5_of_the_utf8_text(values):
    t = ibis.memtable({"text": values}, schema={"text": "string"})
    got = _con.execute(t.select(id=md5_uuid(t.text)))
    assert [uuid.UUID(str(v)) for v in got["id"]] == [_md5_uuid(v) for v in values]
