"""The contact-reason mart on hand-made conversations; a late event updates only its days."""

import pytest

from conftest import make_env, mart_measures, query, write_events
from convo.build import runner
from warehouse_snapshot import snapshot

M = "<m>"
A, B, C, D, E = (str(30000000000000 + n) for n in range(1, 6))
BATCH_1 = [
    # A: payments on day 3, login on day 4 (a later day), closed day 4 after 27 h; first response 30 min.
    ("2024-06-03 9:00:00", A, "1", "", "customer_message_received", M),
    ("2024-06-03 9:10:00", A, "1", "7", "tag_assigned", "payments"),
    ("2024-06-03 9:30:00", A, "1", "7", "message_sent_to_customer", M),
    ("2024-06-04 10:00:00", A, "1", "7", "tag_assigned", "login"),
    ("2024-06-04 12:00:00", A, "1", "7", "status_changed_to", "Closed"),
    # B: payments, closed the same day after 1 h; first response 20 min.
    ("2024-06-03 10:00:00", B, "2", "", "customer_message_received", M),
    ("2024-06-03 10:05:00", B, "2", "7", "tag_assigned", "payments"),
    ("2024-06-03 10:20:00", B, "2", "7", "message_sent_to_customer", M),
    ("2024-06-03 11:00:00", B, "2", "7", "status_changed_to", "Closed"),
    # C: no tag yet (a late event tags it), still open.
    ("2024-06-03 11:00:00", C, "3", "", "customer_message_received", M),
    # D: login, closed, reopened, closed again on day 5 after 26 h; first response 30 min.
    ("2024-06-04 8:00:00", D, "4", "", "customer_message_received", M),
    ("2024-06-04 8:01:00", D, "4", "7", "tag_assigned", "login"),
    ("2024-06-04 8:30:00", D, "4", "7", "message_sent_to_customer", M),
    ("2024-06-04 9:00:00", D, "4", "7", "status_changed_to", "Closed"),
    ("2024-06-04 9:30:00", D, "4", "", "customer_message_received", M),
    ("2024-06-05 10:00:00", D, "4", "7", "status_changed_to", "Closed"),
    # E: payments, closed the same day after 3 h; first response 10 min.
    ("2024-06-03 12:00:00", E, "5", "", "customer_message_received", M),
    ("2024-06-03 12:01:00", E, "5", "7", "tag_assigned", "payments"),
    ("2024-06-03 12:10:00", E, "5", "7", "message_sent_to_customer", M),
    ("2024-06-03 15:00:00", E, "5", "7", "status_changed_to", "Closed"),
]
LATE = [("2024-06-03 11:05:00", C, "3", "7", "tag_assigned", "payments")]  # arrives later, happened on day 3

COLUMNS = mart_measures()
EXPECTED = {
    # day 3: A, B, C, E opened; payments on all four after the late event; B (1 h, 20 min) and E (3 h, 10 min)
    # closed: median 2 h, p90 1 + 0.9 * 2 = 2.8 h; first response median 15, p90 10 + 0.9 * 10 = 19 min.
    (20240603, "payments"): (4, 4, 2, 2.0, 2.8, 15.0, 19.0, 0, 4, 1.0),
    (20240603, "login"): (1, 0, 0, None, None, None, None, 0, 4, 0.25),  # A carries login, tagged on day 4
    # day 4: D opened; login first assigned to A and D; A closed (27 h, 30 min) carrying both tags.
    (20240604, "login"): (1, 2, 1, 27.0, 27.0, 30.0, 30.0, 0, 1, 1.0),
    (20240604, "payments"): (0, 0, 1, 27.0, 27.0, 30.0, 30.0, 0, 1, 0.0),
    # day 5: D closed (26 h, 30 min, one reopen); nothing opened, so no share.
    (20240605, "login"): (0, 0, 1, 26.0, 26.0, 30.0, 30.0, 1, 0, None),
}


def _mart(env):
    rows = query(env, "SELECT * FROM mart_contact_reasons_daily")
    return {(r["date_key"], r["tag"]): r for r in rows}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The two builds, made once for the module: its tests only read them."""
    folder = tmp_path_factory.mktemp("mart")
    env = make_env(folder)
    runner.build(env, [str(write_events(folder / "1.csv", BATCH_1))])
    before = _mart(env)
    runner.build(env, [str(write_events(folder / "2.csv", LATE))])
    return env, before, _mart(env)


def test_hand_worked_values(built):
    env, _, mart = built
    assert sorted(mart) == sorted(EXPECTED)
    for key, expected in EXPECTED.items():
        actual = tuple(mart[key][c] for c in COLUMNS)
        assert actual == pytest.approx(expected), key
    reasons = {r["tag"]: r for r in query(env, "SELECT * FROM dim_tag")}
    assert mart[(20240603, "payments")]["contact_reason"] == reasons["payments"]["contact_reason"]
    assert mart[(20240603, "payments")]["category"] == reasons["payments"]["category"]


def test_late_event_updates_only_its_days(built):
    _, before, after = built
    assert before[(20240603, "payments")]["conversations_opened"] == 3  # C was not tagged yet
    assert after[(20240603, "payments")]["updated_at"] > before[(20240603, "payments")]["updated_at"]
    for key in [(20240604, "login"), (20240604, "payments"), (20240605, "login")]:
        assert after[key]["updated_at"] == before[key]["updated_at"]


def test_incremental_mart_equals_full_rebuild(built, tmp_path):
    env, _, _ = built
    full = make_env(tmp_path, "full")
    inputs = env.warehouse.parents[1]  # the files the incremental builds read, so that each row's source is the same
    runner.build(full, [str(inputs / "1.csv"), str(inputs / "2.csv")])
    exclude = {"ingested_files": {"run_id"}}
    assert snapshot(env.warehouse, exclude) == snapshot(full.warehouse, exclude)
