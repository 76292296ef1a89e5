"""What ingestion keeps in its scratch space: the batch's rows once, whatever the build does with them.

A build's scratch tables live in memory (spilled to disk past the memory limit), so every copy of
the batch's rows costs memory at scale: the landed text is freed once the rows are parsed, and the
new events are a view over the parsed rows. The counts and the events staged must not change for it.
"""

from __future__ import annotations

import datetime

from conftest import make_env, query, write_events
from convo.build import contract, ingest, runner
from convo.engine.warehouse import WORK, Warehouse
from convo.event_window import EventWindow

ROWS = [
    ("2024-01-01 09:00:00", "1", "10", "", "customer_message_received", "hi"),
    ("2024-01-01 09:05:00", "1", "10", "7", "message_sent_to_customer", "hello"),
    ("2024-01-01 09:00:00", "1", "10", "", "customer_message_received", "hi"),  # line 4: a copy of line 2
    ("2024-01-01 09:06:00", "x", "10", "", "customer_message_received", "?"),  # line 5: rejected
    ("2024-01-02 10:00:00", "2", "11", "", "customer_message_received", "help"),
]


def _scratch_tables(wh: Warehouse) -> dict[str, tuple[str, int]]:
    """Scratch relations by name: their kind and, for a table, its rows."""
    rows = wh.execute(
        "SELECT table_name, 'table', estimated_size FROM duckdb_tables() WHERE database_name = 'temp' UNION ALL"
        " SELECT view_name, 'view', NULL FROM duckdb_views() WHERE database_name = 'temp' AND NOT internal"
    )
    return {name: (kind, size) for name, kind, size in rows}


def test_a_batch_is_held_once_after_parsing_and_its_events_are_a_view(tmp_path):
    path = write_events(tmp_path / "events.csv", ROWS)
    wh = Warehouse(tmp_path / "scratch.duckdb", threads=1, memory_limit="1GB")
    try:
        with contract.inspected([path]) as inspected:
            by_id = ingest.land(wh, inspected, first_file_id=1)
            counts = ingest.stage_batch(wh, by_id, None, EventWindow().bounds(datetime.datetime.now(datetime.UTC)))
        scratch = _scratch_tables(wh)
        holding_every_row = sorted(n for n, (kind, rows) in scratch.items() if kind == "table" and rows >= len(ROWS))
        assert holding_every_row == ["batch_parsed"]
        assert scratch["batch_events"][0] == "view"
        assert not [n for n in scratch if n.startswith(("landing_", "raw_", "lines_"))]
        staged = wh.execute(
            f"SELECT source_file, source_line, conversation_id FROM {WORK}.batch_events ORDER BY source_line"
        )
        assert staged == [(str(path), 2, 1), (str(path), 3, 1), (str(path), 6, 2)]
        c = counts[1]
        assert (c.rows_read, c.rows_staged, c.rows_rejected, c.duplicates_removed) == (5, 3, 1, 1)
    finally:
        wh.close()


def test_a_copy_of_a_staged_event_stays_out_when_its_conversation_brings_nothing_new(tmp_path):
    # The second file repeats conversation 1's event and adds conversation 2: the build recomputes
    # conversation 2 only, and trims its snapshot of the staged events to it; the copy must still
    # be known as staged.
    env = make_env(tmp_path)
    runner.build(env, [str(write_events(tmp_path / "first.csv", ROWS[:1]))])
    runner.build(env, [str(write_events(tmp_path / "second.csv", [ROWS[0], ROWS[4]]))])
    staged = query(env, "SELECT conversation_id, source_file FROM stg_conversation_events ORDER BY 1")
    assert [(r["conversation_id"], r["source_file"].rsplit("/", 1)[1]) for r in staged] == [
        (1, "first.csv"),
        (2, "second.csv"),
    ]
    second = query(env, "SELECT * FROM ingested_files WHERE path LIKE '%second.csv'")[0]
    read = (second["rows_read"], second["rows_staged"], second["rows_rejected"], second["duplicates_removed"])
    assert read == (2, 1, 0, 1)
