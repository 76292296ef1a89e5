"""Tests of the synthetic event generator (tools/generate.py)."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
from pathlib import Path

import duckdb
import pytest

import generate as gen

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
N = 2_000
EVENT_TYPES = set(gen.EVENTS)
STATUSES = {"open", "waiting for customer", "closed"}
TS_FORMAT = "%Y-%m-%d %H:%M:%S"


def read_events(path: Path | str, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyRelation:
    """All columns as text, exactly as a loader would see them (empty -> NULL)."""
    columns = ", ".join(f"'{c}': 'VARCHAR'" for c in gen.HEADER)
    return con.sql(
        f"SELECT * FROM read_csv('{path}', header = true, delim = ',', quote = '\"', columns = {{{columns}}})"
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, gen.GenerateResult]:
    path = tmp_path_factory.mktemp("gen") / "events.csv"
    return path, gen.generate(N, path, seed=7)


@pytest.fixture()
def con():
    with duckdb.connect() as c:
        yield c


def test_same_seed_gives_identical_bytes_and_different_seed_differs(tmp_path):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    gen.generate(500, a, seed=1)
    gen.generate(500, b, seed=1)
    gen.generate(500, c, seed=2)
    assert sha256(a) == sha256(b)
    assert sha256(a) != sha256(c)


def test_result_describes_the_output(sample, con):
    path, result = sample
    assert result.files == [path]
    assert result.conversations == N
    assert read_events(path, con).count("*").fetchone()[0] == result.events
    assert result.events == sum(1 for _ in path.open()) - 1


def test_header_and_shape_of_every_line(sample):
    path, _ = sample
    with path.open(newline="") as f:
        assert f.readline() == ",".join(gen.HEADER) + "\n"
        rows = list(csv.reader(f))
    assert all(len(r) == 6 for r in rows)
    # the hour is never zero-padded, minutes and seconds always are
    ts = re.compile(r"\d{4}-\d{2}-\d{2} (1?\d|2[0-3]):[0-5]\d:[0-5]\d")
    assert all(ts.fullmatch(r[0]) for r in rows)
    assert any(re.match(r"\S+ \d:", r[0]) for r in rows)  # e.g. "2024-01-03 7:04:12"
    # some messages contain a comma and come back intact thanks to quoting
    assert any("," in r[5] for r in rows)


def test_every_field_parses_per_the_contract(sample, con):
    path, _ = sample
    read_events(path, con).create("raw")
    bad = con.sql(
        f"""
        SELECT count(*) FILTER (WHERE try_strptime(event_timestamp, '{TS_FORMAT}') IS NULL),
               count(*) FILTER (WHERE TRY_CAST(conversation_id AS BIGINT) IS NULL
                                   OR length(conversation_id) < 14),
               count(*) FILTER (WHERE TRY_CAST(user_id AS BIGINT) IS NULL),
               count(*) FILTER (WHERE agent_id IS NOT NULL AND TRY_CAST(agent_id AS BIGINT) IS NULL),
               count(*) FILTER (WHERE event NOT IN {tuple(gen.EVENTS)} OR event IS NULL),
               count(*) FILTER (WHERE event_value IS NULL)
        FROM raw
        """
    ).fetchone()
    assert bad == (0, 0, 0, 0, 0, 0)
    # strict parse works on every row (raises otherwise)
    con.sql(
        f"SELECT strptime(event_timestamp, '{TS_FORMAT}'), conversation_id::BIGINT, user_id::BIGINT,"
        " agent_id::BIGINT FROM raw"
    ).fetchall()


def test_values_depend_on_the_event(sample, con):
    path, _ = sample
    read_events(path, con).create("raw")

    def values(event: str) -> list[str]:
        return [v for (v,) in con.sql(f"SELECT DISTINCT event_value FROM raw WHERE event = '{event}'").fetchall()]

    assert {v.strip().lower() for v in values("status_changed_to")} == STATUSES
    assert all(v.isdigit() for v in values("agent_assigned"))
    assert set(values("tag_assigned")) <= set(gen.MAPPED_TAGS) | set(gen.UNMAPPED_TAGS)
    message = re.compile(r"<message [0-9a-f]{4}(, [a-z]+)?>")
    for event in ("customer_message_received", "message_sent_to_customer"):
        assert all(message.fullmatch(v) for v in values(event))
    # agent_id: never on customer messages, always on agent actions
    by_event = dict(con.sql("SELECT event, count(agent_id) * 1.0 / count(*) FROM raw GROUP BY event").fetchall())
    assert by_event["customer_message_received"] == 0
    assert by_event["message_sent_to_customer"] == 1
    assert by_event["agent_assigned"] == 1
    assert 0 < by_event["status_changed_to"] < 1  # system Open has none
    assert 0.8 < by_event["tag_assigned"] < 1  # a few tags are set by a bot


def test_every_event_type_appears(sample, con):
    path, _ = sample
    seen = {e for (e,) in read_events(path, con).select("event").distinct().fetchall()}
    assert seen == EVENT_TYPES


def test_events_per_conversation_and_population(sample, con):
    path, result = sample
    n_conv, n_users, n_agents = (
        read_events(path, con)
        .aggregate("count(DISTINCT conversation_id), count(DISTINCT user_id), count(DISTINCT agent_id)")
        .fetchone()
    )
    assert n_conv == N
    assert 11.5 <= result.events / N <= 14
    assert 300 <= n_users <= N // 5  # ~1 user per 5 conversations, some with several
    assert n_agents == gen.MIN_AGENTS


def test_conversation_model_shares(sample, con):
    path, _ = sample
    read_events(path, con).create("raw")
    con.sql(
        f"""
        CREATE TABLE conv AS
        SELECT conversation_id,
               arg_max(lower(trim(event_value)), strptime(event_timestamp, '{TS_FORMAT}'))
                   FILTER (WHERE event = 'status_changed_to') AS final_status,
               count(*) FILTER (WHERE event = 'tag_assigned') AS tags,
               count(DISTINCT event_value) FILTER (WHERE event = 'agent_assigned') AS agents,
               count(*) FILTER (WHERE event = 'status_changed_to' AND lower(trim(event_value)) = 'closed') AS closes,
               max(strptime(event_timestamp, '{TS_FORMAT}')) - min(strptime(event_timestamp, '{TS_FORMAT}')) AS span
        FROM raw GROUP BY ALL
        """
    )
    not_closed, reopened, reassigned, tag_min, tag_max, max_span = con.sql(
        """
        SELECT avg((coalesce(final_status, '') <> 'closed')::INT), avg((closes >= 2)::INT),
               avg((agents >= 2)::INT), min(tags), max(tags), max(span)
        FROM conv
        """
    ).fetchone()
    assert 0.10 <= not_closed <= 0.20
    assert 0.06 <= reopened <= 0.14
    assert 0.05 <= reassigned <= 0.20
    assert (tag_min, tag_max) == (1, 3)
    assert max_span < dt.timedelta(days=14)

    messy = con.sql(
        "SELECT avg((event_value NOT IN ('Open', 'Waiting for customer', 'Closed'))::INT)"
        " FROM raw WHERE event = 'status_changed_to'"
    ).fetchone()[0]
    assert 0.02 <= messy <= 0.09


def test_tags_match_the_seed_mapping(sample, con):
    with (SEEDS / "tag_contact_reasons.csv").open(newline="") as f:
        mapped = {row["tag"] for row in csv.DictReader(f)}
    assert set(gen.MAPPED_TAGS) == mapped
    assert not set(gen.UNMAPPED_TAGS) & mapped
    path, _ = sample
    unmapped_share = con.sql(
        f"SELECT avg((event_value NOT IN {tuple(mapped)})::INT) FROM ({read_events(path, con).sql_query()})"
        " WHERE event = 'tag_assigned'"
    ).fetchone()[0]
    assert 0.005 <= unmapped_share <= 0.04


def test_conversations_start_within_the_window(tmp_path, con):
    path = tmp_path / "e.csv"
    gen.generate(1_000, path, seed=3, start_date="2024-05-01", days=7)
    first, last = con.sql(
        f"""
        SELECT min(t0), max(t0) FROM (
            SELECT min(strptime(event_timestamp, '{TS_FORMAT}')) AS t0
            FROM ({read_events(path, con).sql_query()}) GROUP BY conversation_id)
        """
    ).fetchone()
    assert first >= dt.datetime(2024, 5, 1)
    assert last < dt.datetime(2024, 5, 8)


def test_daily_files_with_late_arrivals(tmp_path, con):
    out = tmp_path / "daily"
    days, late_fraction = 10, 0.05
    result = gen.generate(
        3_000, out, seed=4, start_date="2024-02-26", days=days, daily_files=True, late_fraction=late_fraction
    )
    expected = [out / f"events_{dt.date(2024, 2, 26) + dt.timedelta(days=d)}.csv" for d in range(days)]
    assert result.files == expected
    assert sorted(out.iterdir()) == expected
    for f in expected:
        assert f.open().readline() == ",".join(gen.HEADER) + "\n"

    columns = ", ".join(f"'{c}': 'VARCHAR'" for c in gen.HEADER)
    rel = con.sql(
        f"""
        SELECT strptime(event_timestamp, '{TS_FORMAT}')::DATE AS event_date,
               regexp_extract(filename, 'events_(\\d{{4}}-\\d{{2}}-\\d{{2}})\\.csv', 1)::DATE AS file_date
        FROM read_csv('{out}/*.csv', header = true, columns = {{{columns}}}, filename = true)
        """
    )
    total, late, misplaced, early_not_last = rel.aggregate(
        "count(*), count(*) FILTER (WHERE file_date > event_date),"
        " count(*) FILTER (WHERE file_date > event_date + 3),"
        " count(*) FILTER (WHERE file_date < event_date AND file_date <> DATE '2024-03-06')"
    ).fetchone()
    assert total == result.events
    assert misplaced == 0  # late by 1-3 days only
    assert early_not_last == 0  # only the last file holds events dated after it
    # some late events are capped into the last file, so slightly fewer than late_fraction are late
    assert 0.6 * late_fraction <= late / total <= 1.3 * late_fraction


def test_daily_files_without_late_events_are_exact(tmp_path, con):
    out = tmp_path / "daily"
    gen.generate(500, out, seed=5, days=5, daily_files=True, late_fraction=0.0)
    columns = ", ".join(f"'{c}': 'VARCHAR'" for c in gen.HEADER)
    late = con.sql(
        f"""
        SELECT count(*) FROM read_csv('{out}/*.csv', header = true, columns = {{{columns}}}, filename = true)
        WHERE strptime(event_timestamp, '{TS_FORMAT}')::DATE
              < regexp_extract(filename, 'events_(.*)\\.csv', 1)::DATE
        """
    ).fetchone()[0]
    assert late == 0


def test_parquet_has_the_same_rows_as_csv(tmp_path, con):
    gen.generate(800, tmp_path / "e.csv", seed=9)
    result = gen.generate(800, tmp_path / "e.parquet", seed=9, fmt="parquet")
    parquet = con.sql(f"SELECT * FROM read_parquet('{tmp_path / 'e.parquet'}')")
    assert parquet.columns == list(gen.HEADER)
    assert {str(t) for t in parquet.types} == {"VARCHAR"}
    csv_rel = read_events(tmp_path / "e.csv", con)
    assert parquet.count("*").fetchone()[0] == result.events
    assert parquet.except_(csv_rel).count("*").fetchone()[0] == 0
    assert csv_rel.except_(parquet).count("*").fetchone()[0] == 0


def test_parquet_daily_files(tmp_path, con):
    result = gen.generate(400, tmp_path / "d", seed=1, days=3, daily_files=True, fmt="parquet")
    assert [f.name for f in result.files] == [f"events_2024-01-0{d}.parquet" for d in (1, 2, 3)]
    assert con.sql(f"SELECT count(*) FROM read_parquet('{tmp_path}/d/*.parquet')").fetchone()[0] == result.events


def test_progress_is_reported_per_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "CHUNK_CONVERSATIONS", 300)
    messages: list[str] = []
    gen.generate(1_000, tmp_path / "e.csv", progress=messages.append)
    assert messages == [
        "generated 300/1,000 conversations",
        "generated 600/1,000 conversations",
        "generated 900/1,000 conversations",
        "generated 1,000/1,000 conversations",
    ]


def test_chunks_do_not_repeat_conversation_ids(tmp_path, monkeypatch, con):
    monkeypatch.setattr(gen, "CHUNK_CONVERSATIONS", 250)
    path = tmp_path / "e.csv"
    gen.generate(1_000, path, seed=2)
    assert read_events(path, con).aggregate("count(DISTINCT conversation_id)").fetchone()[0] == 1_000


def test_zero_conversations_writes_only_the_header(tmp_path):
    result = gen.generate(0, tmp_path / "e.csv")
    assert (tmp_path / "e.csv").read_text() == ",".join(gen.HEADER) + "\n"
    assert result.events == 0


@pytest.mark.parametrize("kwargs", [{"conversations": -1}, {"days": 0}, {"fmt": "json"}, {"late_fraction": 1.5}])
def test_invalid_arguments(tmp_path, kwargs):
    args = {"conversations": 10, "out": tmp_path / "e.csv", **kwargs}
    with pytest.raises(ValueError):
        gen.generate(**args)
