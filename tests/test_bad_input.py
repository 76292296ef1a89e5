"""Whatever a row or a file holds: staged with every error-level check holding, or rejected with
its line and reason; a bad line rejects that line; file names are names."""

import datetime

import pytest
from conftest import make_env, query, write_events

from convo import runner
from convo.config import ConfigError, load
from convo.event_window import EventWindow
from convo.models.staging import MAX_FIELD_CHARS

CONVERSATION = "30000000000001"


def _row(timestamp="2024-05-02 9:00:00", conversation=CONVERSATION, user="501", agent="",
         event="customer_message_received", value="<m>"):
    return (timestamp, conversation, user, agent, event, value)


def _rejected(env) -> dict[int, str]:
    return {r["source_line"]: r["reason"] for r in query(env, "SELECT source_line, reason FROM rejected_conversation_events")}


# -- point 1: one row never blocks a build -----------------------------------------------------
WINDOW_REASON = " is outside the accepted window 2016-01-01 00:00:00 to "


def test_every_kind_of_implausible_row_is_rejected_and_the_build_publishes(tmp_path):
    rows = [
        _row(),  # line 2
        _row(timestamp="2015-12-31 23:59:59"),  # line 3: the day before the window
        _row(timestamp="24-03-06 10:21:38"),  # line 4: year 0024
        _row(timestamp="9999-12-31 23:59:59"),
        _row(timestamp="2100-01-01 0:00:00"),
        _row(timestamp="1900-01-01 0:00:00"),
        _row(timestamp="0001-01-01 0:00:00"),  # line 8
        _row(timestamp="2016-01-01 0:00:00", value="first second of the window"),  # line 9: staged
        _row(event="status_changed_to", value="weird status"),  # line 10
        _row(conversation="-5"),
        _row(conversation="0"),
        _row(user="99999999999999999999"),  # line 13
        _row(agent="-1", event="message_sent_to_customer"),
        _row(event="agent_assigned", value="0"),  # line 15
        _row(value="a\x00b"),
        _row(value="x" * (MAX_FIELD_CHARS + 1)),  # line 17
        _row(value="x" * MAX_FIELD_CHARS),  # line 18: staged, at the limit
        _row(event="  Brand_New_Event ", value=" kept "),  # line 19: unknown event type, staged (warn)
        _row(timestamp=" 2024-05-02 9:30:00 ", conversation=f" {CONVERSATION}\t", event=" STATUS_CHANGED_TO ",
             value=" closed "),  # line 20: whitespace around everything, staged
    ]
    env = make_env(tmp_path)
    run = runner.build(env, [str(write_events(tmp_path / "e.csv", rows))])
    assert run.status == "success" and run.published_version == run.run_id
    rejected = _rejected(env)
    for line, text in ((3, "2015-12-31 23:59:59"), (4, "24-03-06 10:21:38"), (5, "9999-12-31 23:59:59"),
                       (6, "2100-01-01 0:00:00"), (7, "1900-01-01 0:00:00"), (8, "0001-01-01 0:00:00")):
        assert rejected.pop(line).startswith(f"event_timestamp '{text}'{WINDOW_REASON}")
    assert rejected == {
        10: "status_changed_to value 'weird status' is not one of OPEN, WAITING FOR CUSTOMER, CLOSED",
        11: "conversation_id '-5' is not a positive integer",
        12: "conversation_id '0' is not a positive integer",
        13: "user_id '99999999999999999999' is too large for a 64-bit integer",
        14: "agent_id '-1' is not a positive integer",
        15: "agent_assigned value '0' is not an agent id",
        16: "event_value contains a NUL character",
        17: f"event_value is longer than {MAX_FIELD_CHARS} characters",
    }
    staged = query(env, "SELECT source_line, event, event_value FROM stg_conversation_events ORDER BY 1")
    assert [(r["source_line"], r["event"]) for r in staged] == [
        (2, "customer_message_received"), (9, "customer_message_received"), (18, "customer_message_received"),
        (19, "brand_new_event"), (20, "status_changed_to")]
    assert staged[-1]["event_value"] == "CLOSED"
    assert query(env, "SELECT min(date) AS first FROM dim_date") == [{"first": datetime.date(2016, 1, 1)}]
    warned = {c.check_name for c in run.checks if not c.success}
    assert warned == {"event is a known event type"}  # a warning, not an error
    f = run.files[0]
    assert (f.rows_read, f.rows_staged, f.rows_rejected, f.duplicates_removed) == (19, 5, 14, 0)


def test_the_window_follows_the_environment(tmp_path):
    env = make_env(tmp_path, event_window=EventWindow(datetime.date(2024, 5, 2)))
    rows = [_row(timestamp="2024-05-01 23:59:59"), _row(timestamp="2024-05-02 0:00:00")]
    runner.build(env, [str(write_events(tmp_path / "e.csv", rows))])
    assert _rejected(env)[2].startswith("event_timestamp '2024-05-01 23:59:59' is outside the accepted window"
                                        " 2024-05-02 00:00:00 to ")
    assert [r["source_line"] for r in query(env, "SELECT source_line FROM stg_conversation_events")] == [3]


def test_the_window_ends_a_set_time_after_the_runs_clock():
    now = datetime.datetime(2026, 3, 1, 12, 30, 15, 999, tzinfo=datetime.UTC)
    assert EventWindow().bounds(now) == (datetime.datetime(2016, 1, 1), datetime.datetime(2026, 3, 2, 12, 30, 15))
    assert EventWindow(datetime.date(2020, 2, 29), 0.5).bounds(now) == (
        datetime.datetime(2020, 2, 29), datetime.datetime(2026, 3, 1, 13, 0, 15))
    # Never past the calendar's last day, which dim_date must hold.
    late = datetime.datetime(2099, 12, 31, 23, 0, tzinfo=datetime.UTC)
    assert EventWindow().bounds(late)[1] == datetime.datetime(2099, 12, 31, 23, 59, 59)


def test_the_window_is_configured_per_environment_inside_the_calendar(tmp_path):
    config = tmp_path / "convo.toml"
    config.write_text("[defaults.event_window]\nhours_ahead = 2\n"
                      "[environments.dev]\n[environments.old]\nevent_window.earliest = 2010-01-01\n"
                      "[environments.text]\nevent_window = { earliest = \"2020-01-01\" }\n"
                      "[environments.late]\nevent_window = { earliest = 2020-01-01, hours_ahead = 48 }\n")
    assert load("dev", config=config).event_window == EventWindow(datetime.date(2016, 1, 1), 2.0)
    assert load("late", config=config).event_window == EventWindow(datetime.date(2020, 1, 1), 48.0)
    with pytest.raises(ConfigError, match="'old': event_window.earliest 2010-01-01 is outside the calendar"):
        load("old", config=config)
    with pytest.raises(ConfigError, match="must be a date like 2016-01-01"):
        load("text", config=config)


def test_generate_refuses_dates_a_build_would_reject(tmp_path):
    from convo.generate import generate

    with pytest.raises(ValueError, match="start_date 2015-12-31 is before 2016-01-01"):
        generate(10, tmp_path / "e.csv", start_date="2015-12-31")
    with pytest.raises(ValueError, match="after today"):
        generate(10, tmp_path / "e.csv", start_date="2099-01-01")
    assert not (tmp_path / "e.csv").exists()
