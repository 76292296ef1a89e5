"""Bad input: clear reasons with file and line, nothing lost, nothing half-written."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import HEADER, make_env, query, write_events
from warehouse_snapshot import snapshot

from convo import runner
from convo.cli import EXIT_BAD_INPUT, main
from convo.ingest import InputError

GOOD = ("2024-05-02 9:00:00", "30000000000001", "501", "", "customer_message_received", "<m>")


def test_malformed_rows_of_each_kind_are_rejected_with_line_and_reason(tmp_path):
    rows = [
        GOOD,
        ("2024-13-01 9:00:00", "30000000000002", "501", "", "customer_message_received", "<m>"),  # line 3
        ("2024-05-02 9:00:00", "3000000000000x", "501", "", "customer_message_received", "<m>"),  # line 4
        ("2024-05-02 9:00:00", "30000000000002", "", "", "customer_message_received", "<m>"),  # line 5
        ("2024-05-02 9:00:00", "30000000000002", "501", "7.5", "message_sent_to_customer", "<m>"),  # line 6
        ("2024-05-02 9:00:00", "30000000000002", "501", "7", "  ", "<m>"),  # line 7
        ("2024-05-02 9:00:00", "30000000000002", "501", "7", "agent_assigned", "bob"),  # line 8
        ("", "", "501", "7", "status_changed_to", ""),  # line 9: three reasons
        ("2024-05-02 9:05:00", "30000000000001", "501", "71", "tag_assigned", "login"),  # line 10
    ]
    path = write_events(tmp_path / "e.csv", rows)
    with path.open("a", newline="") as f:  # the csv module ends lines with \r\n; so do these
        f.write("2024-05-02 9:00:00,30000000000001,501\r\n")  # line 11: too few fields
        f.write("2024-05-02 9:09:00,30000000000001,501,71,message_sent_to_customer,<m>\r\n")  # line 12
    env = make_env(tmp_path)
    run = runner.build(env, [str(path)])
    rejected = {r["source_line"]: r for r in query(env, "SELECT * FROM rejected_conversation_events")}
    assert {line: r["reason"] for line, r in rejected.items() if line != 11} == {
        3: "event_timestamp '2024-13-01 9:00:00' is not a timestamp like 2019-04-04 1:18:45",
        4: "conversation_id '3000000000000x' is not an integer",
        5: "user_id is empty",
        6: "agent_id '7.5' is not an integer",
        7: "event is empty",
        8: "agent_assigned value 'bob' is not an agent id",
        9: "event_timestamp is empty; conversation_id is empty; status_changed_to has no status value",
    }
    assert rejected[11]["reason"].startswith("malformed CSV row: MISSING COLUMNS")
    assert rejected[11]["raw_line"] == "2024-05-02 9:00:00,30000000000001,501"
    assert rejected[4]["conversation_id"] == "3000000000000x"  # the raw text is kept
    assert {r["source_file"] for r in rejected.values()} == {str(path)}
    staged = query(env, "SELECT source_line FROM stg_conversation_events ORDER BY source_line")
    assert [r["source_line"] for r in staged] == [2, 10, 12]
    f = run.files[0]
    assert (f.rows_read, f.rows_staged, f.rows_rejected, f.duplicates_removed) == (11, 3, 8, 0)


def test_line_numbers_hold_in_large_files(tmp_path):
    # Enough rows for DuckDB to read in parallel; each row's agent_id encodes its own line number.
    rows = [(f"2024-05-02 {h % 24}:00:00", str(30000000000000 + i % 997), "1", str(i + 2),
             "message_sent_to_customer", "<m>") for i, h in enumerate(range(300_000))]
    path = write_events(tmp_path / "big.csv", rows)
    env = make_env(tmp_path)
    runner.build(env, [str(path)])
    assert query(env, "SELECT count(*) AS n FROM stg_conversation_events WHERE agent_id <> source_line") == [{"n": 0}]
    assert query(env, "SELECT count(*) AS n FROM stg_conversation_events") == [{"n": 300_000}]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.csv", None, "file not found"),
        ("empty.csv", b"", "the file is empty"),
        ("header.csv", b"ts,conversation,user,agent,event,value\n1,2,3,4,5,6\n", "line 1: wrong header"),
        ("binary.csv", b"\xff\xfe\x00\x01garbage\n", "not UTF-8 text"),
        ("events.json", b"[]", "unsupported file type '.json'"),
        ("broken.parquet", b"PAR1 not really", "not a readable Parquet file"),
    ],
)
def test_unreadable_file_fails_the_build_and_writes_nothing(tmp_path, name, content, message):
    env = make_env(tmp_path)
    runner.build(env, [str(write_events(tmp_path / "good.csv", [GOOD]))])
    before = snapshot(env.warehouse)
    bad = tmp_path / name
    if content is not None:
        bad.write_bytes(content)
    other = write_events(tmp_path / "other.csv", [GOOD[:4] + ("message_sent_to_customer", "<x>")])
    with pytest.raises(InputError, match=message) as error:
        runner.build(env, [str(other), str(bad)])
    assert str(bad) in str(error.value)
    assert snapshot(env.warehouse) == before  # the good file given alongside was not half-loaded
    last = query(env, "SELECT status, message FROM convo_meta.runs ORDER BY run_id DESC LIMIT 1")[0]
    assert last["status"] == "failed" and str(bad) in last["message"]


def test_cli_reports_bad_input_with_exit_status(tmp_path, capsys):
    env = make_env(tmp_path)
    code = main(["build", "--warehouse", str(env.warehouse), str(tmp_path / "nope.csv")])
    assert code == EXIT_BAD_INPUT
    assert f"{tmp_path / 'nope.csv'}: file not found" in capsys.readouterr().err


def test_parquet_input_gives_the_same_tables_as_csv(tmp_path):
    rows = [GOOD, ("2024-05-02 9:05:00", "30000000000001", "501", "71", "status_changed_to", " Closed")]
    csv_env, parquet_env = make_env(tmp_path, "csv"), make_env(tmp_path, "parquet")
    runner.build(csv_env, [str(write_events(tmp_path / "e.csv", rows))])
    columns = {name: [r[i] or None for r in rows] for i, name in enumerate(HEADER)}
    pq.write_table(pa.table(columns), tmp_path / "e.parquet")
    runner.build(parquet_env, [str(tmp_path / "e.parquet")])
    # CSV lines count the header; Parquet rows do not.
    where_read = {"stg_conversation_events": {"source_file", "source_line"},
                  "ingested_files": {"path", "sha256", "file_format", "run_id"}}
    assert snapshot(csv_env.warehouse, where_read) == snapshot(parquet_env.warehouse, where_read)
    lines = query(parquet_env, "SELECT source_line FROM stg_conversation_events ORDER BY 1")
    assert [r["source_line"] for r in lines] == [1, 2]


def test_header_in_another_order_and_case_is_accepted(tmp_path):
    header = ["Event", "event_timestamp", "conversation_id", "user_id", "agent_id", "event_value"]
    row = ("customer_message_received", "2024-05-02 9:00:00", "30000000000001", "501", "", "<m>")
    env = make_env(tmp_path)
    runner.build(env, [str(write_events(tmp_path / "e.csv", [row], header=header))])
    assert query(env, "SELECT event, user_id FROM stg_conversation_events") == [
        {"event": "customer_message_received", "user_id": 501}
    ]


def test_a_directory_or_glob_reads_every_file_in_name_order(tmp_path):
    folder = tmp_path / "in"
    write_events(folder / "b.csv", [GOOD[:4] + ("message_sent_to_customer", "<b>")])
    write_events(folder / "a.csv", [GOOD])
    env = make_env(tmp_path)
    run = runner.build(env, [str(folder)])
    assert [f.path for f in run.files] == [str(folder / "a.csv"), str(folder / "b.csv")]
    with pytest.raises(InputError, match="no file matches"):
        runner.build(env, [str(tmp_path / "none-*.csv")])
