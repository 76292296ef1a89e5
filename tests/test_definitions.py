"""The data definitions of the warehouse, on hand-made conversations with hand-worked answers.

Each conversation below probes one rule; the expected values were worked out by hand from the
rows and are written next to the assertions.
"""

from datetime import datetime

import pytest

from conftest import by_key, make_env, query, write_events
from convo.build import runner

M = "<message>"
ROWS = [
    # 101: a plain conversation, closed at the end.
    ("2024-01-01 9:00:00", "10000000000101", "1", "", "customer_message_received", M),
    ("2024-01-01 9:05:00", "10000000000101", "1", "7", "agent_assigned", "7"),
    ("2024-01-01 9:20:00", "10000000000101", "1", "7", "message_sent_to_customer", M),
    ("2024-01-01 9:20:00", "10000000000101", "1", "7", "status_changed_to", "Waiting for customer"),
    ("2024-01-01 10:30:00", "10000000000101", "1", "", "customer_message_received", M),
    ("2024-01-01 12:00:00", "10000000000101", "1", "7", "status_changed_to", "Closed"),
    # 102: two status changes at the same time: the later line (Open) wins.
    ("2024-01-02 8:00:00", "10000000000102", "2", "", "customer_message_received", M),
    ("2024-01-02 9:00:00", "10000000000102", "2", "8", "status_changed_to", "Closed"),
    ("2024-01-02 9:00:00", "10000000000102", "2", "8", "status_changed_to", "Open"),
    # 103: the same tie the other way round: Closed wins.
    ("2024-01-02 8:00:00", "10000000000103", "2", "", "customer_message_received", M),
    ("2024-01-02 9:00:00", "10000000000103", "2", "8", "status_changed_to", "Open"),
    ("2024-01-02 9:00:00", "10000000000103", "2", "8", "status_changed_to", "Closed"),
    # 105 (listed before 104: rows are not sorted): mixed case and padding; last event not a status change.
    ("2024-01-04 10:20:00", "10000000000105", "4", "7", "message_sent_to_customer", M),
    ("2024-01-04 10:00:00", "10000000000105", "4", "", "Customer_Message_Received ", M),
    ("2024-01-04 10:10:00", "10000000000105", "4", "7", " STATUS_changed_to ", "  waiting FOR customer "),
    # 104: no status event at all; a tag in mixed case.
    ("2024-01-03 7:00:00", "10000000000104", "3", "", "customer_message_received", M),
    ("2024-01-03 7:30:00", "10000000000104", "3", "9", "tag_assigned", " Payments"),
    # 106: agent 7 assigns agents 8 and 9; 8 never replies.
    ("2024-01-05 9:00:00", "10000000000106", "5", "", "customer_message_received", M),
    ("2024-01-05 9:01:00", "10000000000106", "5", "7", "agent_assigned", "8"),
    ("2024-01-05 9:02:00", "10000000000106", "5", "7", "agent_assigned", "9"),
    ("2024-01-05 9:30:00", "10000000000106", "5", "9", "message_sent_to_customer", M),
    # 107: a repeated tag, two flag tags, and an unmapped tag assigned after closing.
    ("2024-01-06 9:00:00", "10000000000107", "6", "", "customer_message_received", M),
    ("2024-01-06 9:05:00", "10000000000107", "6", "7", "tag_assigned", "login"),
    ("2024-01-06 9:06:00", "10000000000107", "6", "7", "tag_assigned", "LOGIN"),
    ("2024-01-06 9:10:00", "10000000000107", "6", "7", "tag_assigned", "app_question"),
    ("2024-01-06 10:00:00", "10000000000107", "6", "7", "status_changed_to", "Closed"),
    ("2024-01-07 8:00:00", "10000000000107", "6", "7", "tag_assigned", "refund_delay"),
    # 108: closed, reopened by the customer, closed, reopened again, closed.
    ("2024-01-08 9:00:00", "10000000000108", "8", "", "customer_message_received", M),
    ("2024-01-08 9:10:00", "10000000000108", "8", "7", "message_sent_to_customer", M),
    ("2024-01-08 9:20:00", "10000000000108", "8", "7", "status_changed_to", "Closed"),
    ("2024-01-08 11:00:00", "10000000000108", "8", "", "customer_message_received", M),
    ("2024-01-08 11:30:00", "10000000000108", "8", "7", "status_changed_to", "Closed"),
    ("2024-01-09 9:00:00", "10000000000108", "8", "", "customer_message_received", M),
    ("2024-01-09 9:30:00", "10000000000108", "8", "7", "status_changed_to", "Open"),
    ("2024-01-09 10:00:00", "10000000000108", "8", "7", "status_changed_to", "Closed"),
    # 109: the agent writes first; the first event's user (10) is the conversation's user.
    ("2024-01-10 8:00:00", "10000000000109", "10", "7", "message_sent_to_customer", M),
    ("2024-01-10 9:00:00", "10000000000109", "11", "", "customer_message_received", M),
    ("2024-01-10 9:45:00", "10000000000109", "11", "7", "message_sent_to_customer", M),
    # 110: an exact duplicate once trimmed.
    ("2024-01-11 9:00:00", "10000000000110", "12", "", "customer_message_received", "<m1>"),
    ("2024-01-11 9:00:00", " 10000000000110 ", "12", "", "customer_message_received", "<m1>"),
]


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("definitions")
    env = make_env(tmp)
    runner.build(env, [str(write_events(tmp / "events.csv", ROWS))])
    return env


@pytest.fixture(scope="module")
def lifecycle(wh):
    return by_key(query(wh, "SELECT * FROM fact_conversation_lifecycle"), "id")


@pytest.fixture(scope="module")
def conversations(wh):
    return by_key(query(wh, "SELECT * FROM fact_conversations"), "conversation_id")


def c(n: int) -> int:
    return 10000000000000 + n


def test_one_row_per_conversation(lifecycle, conversations):
    assert sorted(lifecycle) == sorted(conversations) == [c(n) for n in range(101, 111)]


@pytest.mark.parametrize(
    "n, status",
    [
        (101, "CLOSED"),
        (102, "OPEN"),  # tie at 9:00: Open is on the later line
        (103, "CLOSED"),  # tie at 9:00: Closed is on the later line
        (104, "OPEN"),  # no status event
        (105, "WAITING FOR CUSTOMER"),  # padded, mixed case; a message came after it
        (106, "OPEN"),
        (107, "CLOSED"),  # a tag after closing does not change it
        (108, "CLOSED"),
        (109, "OPEN"),
    ],
)
def test_status_is_latest_status_change(lifecycle, conversations, n, status):
    assert lifecycle[c(n)]["status"] == status
    assert conversations[c(n)]["conversation_status"] == status


@pytest.mark.parametrize(
    "n, closed_at, hours",
    [
        (101, datetime(2024, 1, 1, 12), 3.0),
        (102, None, None),
        (103, datetime(2024, 1, 2, 9), 1.0),
        (107, datetime(2024, 1, 6, 10), 1.0),
        (108, datetime(2024, 1, 9, 10), 25.0),  # the last Closed event; opened 2024-01-08 9:00
        (105, None, None),
    ],
)
def test_closed_at_and_hours_to_resolve(lifecycle, n, closed_at, hours):
    row = lifecycle[c(n)]
    assert row["closed_at"] == closed_at
    assert row["hours_to_resolve"] == hours
    assert row["closed_date_key"] == (int(closed_at.strftime("%Y%m%d")) if closed_at else None)


def test_user_is_user_on_first_event(lifecycle, conversations):
    assert lifecycle[c(109)]["user_id"] == 10
    assert conversations[c(109)]["user_id"] == 10
    assert lifecycle[c(101)]["user_id"] == 1


@pytest.mark.parametrize("n, agents", [(101, 1), (104, 1), (106, 3), (109, 1), (110, 0), (102, 1)])
def test_number_involved_agents(lifecycle, conversations, n, agents):
    # 106: agent 7 assigned 8 and 9 -> {7, 8, 9}; 104: agent 9 tagged it; 110: customer only.
    assert lifecycle[c(n)]["number_involved_agents"] == agents
    assert conversations[c(n)]["number_involved_agents"] == agents


def test_started_and_last_event(conversations, lifecycle):
    assert conversations[c(105)]["conversation_started_at"] == datetime(2024, 1, 4, 10)
    assert conversations[c(105)]["last_event_at"] == datetime(2024, 1, 4, 10, 20)
    assert conversations[c(107)]["last_event_at"] == datetime(2024, 1, 7, 8)
    assert lifecycle[c(107)]["opened_at"] == datetime(2024, 1, 6, 9)
    assert lifecycle[c(107)]["opened_date_key"] == 20240106


def test_tags_and_flags(lifecycle):
    row = lifecycle[c(107)]  # login (twice), app_question, refund_delay
    assert (row["number_tags_assigned"], row["login_related"], row["app_related"], row["payments_related"]) == (
        3,
        1,
        1,
        0,
    )
    row = lifecycle[c(104)]
    assert (row["number_tags_assigned"], row["payments_related"], row["login_related"]) == (1, 1, 0)
    assert lifecycle[c(101)]["number_tags_assigned"] == 0


@pytest.mark.parametrize("n, count", [(101, 3), (104, 1), (105, 2), (108, 4), (109, 3), (110, 1)])
def test_interaction_between_customer(lifecycle, n, count):
    # 110: the duplicate customer message counts once.
    assert lifecycle[c(n)]["interaction_between_customer"] == count


@pytest.mark.parametrize("n, reopens", [(101, 0), (103, 0), (107, 0), (108, 2)])
def test_reopen_count(lifecycle, n, reopens):
    # 108: Closed 9:20 -> customer 11:00 (1); Closed 11:30 -> customer next day (2); final Closed: none after.
    assert lifecycle[c(n)]["reopen_count"] == reopens


@pytest.mark.parametrize("n, minutes", [(101, 20.0), (104, None), (105, 20.0), (106, 30.0), (108, 10.0), (109, 45.0)])
def test_first_response_minutes(lifecycle, n, minutes):
    # 109: the agent's 8:00 message precedes the first customer message, so 9:45 answers it.
    assert lifecycle[c(n)]["first_response_minutes"] == minutes


def test_staging_normalises_values(wh):
    rows = query(
        wh,
        "SELECT event, event_value, event_sequence FROM stg_conversation_events"
        " WHERE conversation_id = ? ORDER BY event_sequence",
        [c(105)],
    )
    assert [(r["event"], r["event_value"]) for r in rows] == [
        ("customer_message_received", M),
        ("status_changed_to", "WAITING FOR CUSTOMER"),
        ("message_sent_to_customer", M),
    ]
    assert [r["event_sequence"] for r in rows] == [1, 2, 3]


def test_ties_keep_input_order(wh):
    rows = query(
        wh,
        "SELECT event_value, event_sequence FROM stg_conversation_events"
        " WHERE conversation_id = ? AND event = 'status_changed_to' ORDER BY event_sequence",
        [c(102)],
    )
    assert [r["event_value"] for r in rows] == ["CLOSED", "OPEN"]


def test_duplicates_are_kept_once(wh):
    assert query(wh, "SELECT count(*) AS n FROM stg_conversation_events WHERE conversation_id = ?", [c(110)]) == [
        {"n": 1}
    ]
    files = query(wh, "SELECT rows_read, rows_staged, rows_rejected, duplicates_removed FROM ingested_files")
    assert files == [
        {"rows_read": len(ROWS), "rows_staged": len(ROWS) - 1, "rows_rejected": 0, "duplicates_removed": 1}
    ]


def test_tag_bridge(wh):
    rows = query(
        wh,
        "SELECT tag, first_assigned_at, times_assigned, first_assigned_date_key"
        " FROM fact_conversation_tags WHERE conversation_id = ? ORDER BY tag",
        [c(107)],
    )
    assert rows == [
        {
            "tag": "app_question",
            "first_assigned_at": datetime(2024, 1, 6, 9, 10),
            "times_assigned": 1,
            "first_assigned_date_key": 20240106,
        },
        {
            "tag": "login",
            "first_assigned_at": datetime(2024, 1, 6, 9, 5),
            "times_assigned": 2,
            "first_assigned_date_key": 20240106,
        },
        {
            "tag": "refund_delay",
            "first_assigned_at": datetime(2024, 1, 7, 8),
            "times_assigned": 1,
            "first_assigned_date_key": 20240107,
        },
    ]


def test_dim_tag_keeps_unmapped_tags(wh):
    tags = by_key(query(wh, "SELECT * FROM dim_tag"), "tag")
    assert tags["refund_delay"]["category"] == "unmapped"
    assert tags["refund_delay"]["contact_reason"] == "refund_delay"
    assert tags["payments"]["category"] != "unmapped"


def test_dim_user(wh):
    users = by_key(query(wh, "SELECT * FROM dim_user"), "id")
    assert sorted(users) == [1, 2, 3, 4, 5, 6, 8, 10, 11, 12]
    assert users[2]["conversation_count"] == 2  # 102 and 103
    assert users[10]["conversation_count"] == 1
    assert users[11]["conversation_count"] == 0  # only on later events of 109
    assert users[11]["first_seen_at"] == datetime(2024, 1, 10, 9)
    assert users[1]["last_seen_at"] == datetime(2024, 1, 1, 12)
    assert all(u["user_name"] is None and u["email"] is None for u in users.values())


def test_dim_agent(wh):
    agents = by_key(query(wh, "SELECT * FROM dim_agent"), "id")
    assert sorted(agents) == [7, 8, 9]
    # agent 7: 101, 105, 106 (assigned others), 107, 108, 109
    assert agents[7]["conversations_handled"] == 6
    assert agents[8]["conversations_handled"] == 3  # 102, 103 (acted), 106 (assigned, never replied)
    assert agents[9]["conversations_handled"] == 2  # 104 (tagged), 106
    assert agents[8]["first_seen_at"] == datetime(2024, 1, 2, 9)
    assert agents[8]["last_seen_at"] == datetime(2024, 1, 5, 9, 1)
    assert all(a["agent_name"] is None for a in agents.values())


def test_int_agent_conversations(wh):
    rows = query(
        wh,
        "SELECT agent_id, first_seen_at, last_seen_at FROM int_agent_conversations"
        " WHERE conversation_id = ? ORDER BY agent_id",
        [c(106)],
    )
    # 106: agent 7 assigns 8 at 9:01 and 9 at 9:02; 9 replies at 9:30; 8 never acts.
    assert [(r["agent_id"], r["first_seen_at"], r["last_seen_at"]) for r in rows] == [
        (7, datetime(2024, 1, 5, 9, 1), datetime(2024, 1, 5, 9, 2)),
        (8, datetime(2024, 1, 5, 9, 1), datetime(2024, 1, 5, 9, 1)),
        (9, datetime(2024, 1, 5, 9, 2), datetime(2024, 1, 5, 9, 30)),
    ]
    pairs = query(wh, "SELECT count(*) AS n FROM int_agent_conversations")[0]["n"]
    assert pairs == sum(a["conversations_handled"] for a in query(wh, "SELECT * FROM dim_agent"))  # 6 + 3 + 2


def test_factless_event_fact(wh):
    rows = query(
        wh,
        "SELECT event, tag, status, agent_id, assigned_agent_id, date_key FROM fact_conversation_events"
        " WHERE conversation_id = ? ORDER BY event_sequence",
        [c(106)],
    )
    assert [(r["event"], r["agent_id"], r["assigned_agent_id"]) for r in rows] == [
        ("customer_message_received", None, None),
        ("agent_assigned", 7, 8),
        ("agent_assigned", 7, 9),
        ("message_sent_to_customer", 9, None),
    ]
    assert {r["date_key"] for r in rows} == {20240105}
    assert query(wh, "SELECT count(*) AS n FROM fact_conversation_events") == [{"n": len(ROWS) - 1}]


def test_calendar(wh):
    days = query(wh, "SELECT * FROM dim_date ORDER BY date_key")
    assert len(days) == 30681
    first, last = days[0], days[-1]
    # 2016-01-01 was a Friday, in ISO week 53 of 2015; 2099-12-31 is a Thursday, ISO week 53 of 2099.
    assert (first["date_key"], first["year"], first["quarter"], first["month"], first["month_name"], first["day"]) == (
        20160101,
        2016,
        1,
        1,
        "January",
        1,
    )
    assert (first["day_of_week"], first["day_name"], first["week_of_year"], first["is_weekend"]) == (
        5,
        "Friday",
        53,
        False,
    )
    assert (last["date_key"], last["day_of_week"], last["day_name"], last["week_of_year"], last["quarter"]) == (
        20991231,
        4,
        "Thursday",
        53,
        4,
    )
    sunday = by_key(days, "date_key")[20240107]
    assert (sunday["day_of_week"], sunday["day_name"], sunday["is_weekend"]) == (0, "Sunday", True)
