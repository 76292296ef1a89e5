"""The dimension models on in-memory tables, each answer worked out by hand from the rows."""

from __future__ import annotations

import datetime

import ibis
import pytest
from model_io import at, by, rows, staged, table

from convo.models.dimensions import UNMAPPED, dim_agent, dim_date, dim_tag, dim_user
from convo.models.vocabulary import AGENT_MESSAGE, CUSTOMER_MESSAGE

M = "<message>"


@pytest.fixture(scope="module")
def calendar() -> ibis.Table:
    return dim_date()


def test_calendar_runs_from_2016_through_2099_one_row_a_day(calendar):
    bounds = calendar.aggregate(
        days=calendar.count(), keys=calendar.date_key.nunique(), first=calendar.date.min(), last=calendar.date.max()
    )
    # 2016 to 2099 is 84 years, 21 of them leap years (2016, 2020, ... 2096): 84 * 365 + 21 days.
    assert rows(bounds) == [
        {
            "days": 84 * 365 + 21,
            "keys": 84 * 365 + 21,
            "first": datetime.date(2016, 1, 1),
            "last": datetime.date(2099, 12, 31),
        }
    ]


def test_calendar_days_named_and_numbered(calendar):
    days = [20160101, 20240229, 20241229, 20241230, 20991231]
    found = by("date_key", rows(calendar.filter(calendar.date_key.isin(days))))
    columns = ("year", "quarter", "month", "month_name", "day", "day_of_week", "day_name", "week_of_year", "is_weekend")
    assert {key: tuple(found[key][c] for c in columns) for key in days} == {
        # A Friday in ISO week 53 of 2015.
        20160101: (2016, 1, 1, "January", 1, 5, "Friday", 53, False),
        # A leap day, a Thursday.
        20240229: (2024, 1, 2, "February", 29, 4, "Thursday", 9, False),
        # A Sunday (0), weekend; ISO week 52 of 2024.
        20241229: (2024, 4, 12, "December", 29, 0, "Sunday", 52, True),
        # The next day, a Monday, is in ISO week 1 of 2025.
        20241230: (2024, 4, 12, "December", 30, 1, "Monday", 1, False),
        # The last day, a Thursday in ISO week 53 of 2099.
        20991231: (2099, 4, 12, "December", 31, 4, "Thursday", 53, False),
    }
    assert found[20240229]["date"] == datetime.date(2024, 2, 29)


def test_users_seen_and_the_conversations_they_own():
    events = staged(
        (109, "2024-01-10 8:00", 10, 7, AGENT_MESSAGE, M),
        (109, "2024-01-10 9:00", 11, None, CUSTOMER_MESSAGE, M),  # 11 writes in 10's conversation
        (110, "2024-01-11 9:00", 10, None, CUSTOMER_MESSAGE, M),
    )
    # The conversations' user is the user of their first event: 10 for both.
    conversations = table(
        "fact_conversations", [{"conversation_id": 109, "user_id": 10}, {"conversation_id": 110, "user_id": 10}]
    )
    no_profile = {"user_name": None, "email": None, "country": None, "signed_up_at": None}
    assert by("id", rows(dim_user(events, conversations))) == {
        10: {
            "first_seen_at": at("2024-01-10 8:00"),
            "last_seen_at": at("2024-01-11 9:00"),
            "conversation_count": 2,
            **no_profile,
        },
        # Seen on an event, owns no conversation: 0, not NULL.
        11: {
            "first_seen_at": at("2024-01-10 9:00"),
            "last_seen_at": at("2024-01-10 9:00"),
            "conversation_count": 0,
            **no_profile,
        },
    }


def test_agents_over_all_their_conversations():
    agent_conversations = table(
        "int_agent_conversations",
        [
            {
                "conversation_id": 1,
                "agent_id": 7,
                "first_seen_at": at("2024-01-01 9:05"),
                "last_seen_at": at("2024-01-01 9:20"),
            },
            {
                "conversation_id": 2,
                "agent_id": 7,
                "first_seen_at": at("2024-01-02 9:01"),
                "last_seen_at": at("2024-01-03 8:00"),
            },
            # 9 was only assigned, once: its first and last time are that assignment's.
            {
                "conversation_id": 2,
                "agent_id": 9,
                "first_seen_at": at("2024-01-02 9:01"),
                "last_seen_at": at("2024-01-02 9:01"),
            },
        ],
    )
    no_profile = {"agent_name": None, "team": None, "hired_at": None}
    assert by("id", rows(dim_agent(agent_conversations))) == {
        7: {
            "first_seen_at": at("2024-01-01 9:05"),
            "last_seen_at": at("2024-01-03 8:00"),
            "conversations_handled": 2,
            **no_profile,
        },
        9: {
            "first_seen_at": at("2024-01-02 9:01"),
            "last_seen_at": at("2024-01-02 9:01"),
            "conversations_handled": 1,
            **no_profile,
        },
    }


def test_tags_from_the_mapping_and_unmapped_tags_seen_in_events():
    seen = table(
        "fact_conversation_tags",
        [
            {"conversation_id": 1, "tag": "login"},
            {"conversation_id": 2, "tag": "login"},  # seen twice: still one row
            {"conversation_id": 2, "tag": "refund_delay"},  # not in the mapping
        ],
    )
    mapping = table(
        "seed_tag_contact_reasons",
        [
            {"tag": "login", "contact_reason": "Cannot log in", "category": "Account"},
            {"tag": "payments", "contact_reason": "Payment problem", "category": "Billing"},  # mapped, never seen: kept
        ],
    )
    assert by("tag", rows(dim_tag(seen, mapping))) == {
        "login": {"contact_reason": "Cannot log in", "category": "Account"},
        "payments": {"contact_reason": "Payment problem", "category": "Billing"},
        "refund_delay": {"contact_reason": "refund_delay", "category": UNMAPPED},
    }
