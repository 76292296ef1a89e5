"""The contact-reason mart on in-memory tables, each day's counts worked out by hand."""

from __future__ import annotations

import pytest
from model_io import rows, table

from conftest import mart_measures
from convo.models.dimensions import UNMAPPED
from convo.models.marts import mart_contact_reasons_daily


def d(day: int) -> int:
    return 20240100 + day


# Conversations (opened, closed or None, hours to resolve, first response minutes, reopens) and
# their tags (tag, day first assigned). Conversation 4 has no tag; 3 is still open.
CONVERSATIONS = {
    1: (d(1), d(3), 50.0, 10.0, 1, [("login", d(1)), ("payments", d(2))]),
    2: (d(1), d(1), 2.0, 30.0, 0, [("login", d(1))]),
    3: (d(2), None, None, None, 0, [("login", d(2))]),
    4: (d(1), None, None, None, 0, []),
    5: (d(2), d(3), 10.0, None, 0, [("refund", d(3))]),  # no agent reply; an unmapped tag
    6: (d(2), d(3), 4.0, 20.0, 2, [("login", d(2))]),
}
REASONS = {
    "login": ("Cannot log in", "Account"),
    "payments": ("Payment problem", "Billing"),
    "refund": ("refund", UNMAPPED),
}

COLUMNS = mart_measures()
# Opened: day 1 holds 1, 2, 4 (3 in all); day 2 holds 3, 5, 6 (3 in all); nothing opens on day 3.
# Tagged: the day of each tag's first assignment. Closed: by the day it closed, with the
# measures of the conversations closed that day. p90 interpolates linearly: of [4, 50] at
# 0.9 * (2 - 1) = 0.9, 4 + 0.9 * 46 = 45.4; of [10, 20], 10 + 0.9 * 10 = 19.
EXPECTED = {
    # 1 and 2 opened with login; 2 closed that day (2 h, 30 min); 2 of the day's 3 conversations.
    (d(1), "login"): (2, 2, 1, 2.0, 2.0, 30.0, 30.0, 0, 3, 2 / 3),
    # 1 opened with payments, assigned on day 2 only.
    (d(1), "payments"): (1, 0, 0, None, None, None, None, 0, 3, 1 / 3),
    # 3 and 6 opened and tagged login; neither closed that day.
    (d(2), "login"): (2, 2, 0, None, None, None, None, 0, 3, 2 / 3),
    # payments first assigned to 1 on day 2; nothing opened with it that day: a share of 0.
    (d(2), "payments"): (0, 1, 0, None, None, None, None, 0, 3, 0.0),
    # 5 opened; its tag was assigned on day 3.
    (d(2), "refund"): (1, 0, 0, None, None, None, None, 0, 3, 1 / 3),
    # 1 (50 h, 10 min, 1 reopen) and 6 (4 h, 20 min, 2 reopens) closed; nothing opened: no share.
    (d(3), "login"): (0, 0, 2, 27.0, 45.4, 15.0, 19.0, 3, 0, None),
    (d(3), "payments"): (0, 0, 1, 50.0, 50.0, 10.0, 10.0, 1, 0, None),
    # 5 closed without an agent reply: no first-response measure.
    (d(3), "refund"): (0, 1, 1, 10.0, 10.0, None, None, 0, 0, None),
}


@pytest.fixture(scope="module")
def mart() -> dict[tuple[int, str], dict]:
    measures = ("opened_date_key", "closed_date_key", "hours_to_resolve", "first_response_minutes", "reopen_count")
    tagged = table(
        "int_conversation_tags",
        [
            {"conversation_id": c, "tag": tag, "first_assigned_date_key": day, **dict(zip(measures, values[:5]))}
            for c, values in CONVERSATIONS.items()
            for tag, day in values[5]
        ],
    )
    lifecycle = table(
        "fact_conversation_lifecycle",
        [{"id": c, **dict(zip(measures, values[:5]))} for c, values in CONVERSATIONS.items()],
    )
    reasons = table("dim_tag", [{"tag": t, "contact_reason": r, "category": c} for t, (r, c) in REASONS.items()])
    found = rows(mart_contact_reasons_daily(tagged, lifecycle, reasons))
    return {(r["date_key"], r["tag"]): r for r in found}


def test_one_row_per_day_and_tag_with_any_activity(mart):
    assert sorted(mart) == sorted(EXPECTED)


@pytest.mark.parametrize("day_and_tag", sorted(EXPECTED), ids=lambda k: f"{k[0]}-{k[1]}")
def test_daily_counts_and_measures(mart, day_and_tag):
    row = mart[day_and_tag]
    assert (row["contact_reason"], row["category"]) == REASONS[day_and_tag[1]]
    expected = dict(zip(COLUMNS, EXPECTED[day_and_tag], strict=True))
    assert {c: row[c] for c in COLUMNS} == {c: v if v is None else pytest.approx(v) for c, v in expected.items()}
