"""Bad input: clear reasons with file and line, nothing lost, nothing half-written."""

import logging
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import HEADER, make_env, query, write_events
from convo.build import runner
from convo.build.ingest import InputError
from convo.cli import EXIT_BAD_INPUT, main
from warehouse_snapshot import snapshot

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
    rows = [
        (
            f"2024-05-02 {h % 24}:00:00",
            str(30000000000000 + i % 997),
            "1",
            str(i + 2),
            "message_sent_to_customer",
            "<m>",
        )
        for i, h in enumerate(range(300_000))
    ]
    path = write_events(tmp_path / "big.csv", rows)
    env = make_env(tmp_path)
    runner.build(env, [str(path)])
    assert query(env, "SELECT count(*) AS n FROM stg_conversation_events WHERE agent_id <> source_line") == [{"n": 0}]
    assert query(env, "SELECT count(*) AS n FROM stg_conversation_events") == [{"n": 300_000}]


@pytest.fixture(scope="module")
def one_good_build(tmp_path_factory):
    """A warehouse that published one good file; a test that builds on it works on a copy."""
    folder = tmp_path_factory.mktemp("good")
    env = make_env(folder)
    runner.build(env, [str(write_events(folder / "good.csv", [GOOD]))])
    return env


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
def test_unreadable_file_fails_the_build_and_writes_nothing(one_good_build, tmp_path, name, content, message):
    env = make_env(tmp_path)
    shutil.copytree(one_good_build.warehouse.parent, env.warehouse.parent)  # the warehouse and its readers' copy
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
    where_read = {
        "stg_conversation_events": {"source_file", "source_line"},
        "ingested_files": {"path", "sha256", "file_format", "run_id"},
    }
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


def test_a_directory_reads_every_file_in_name_order_and_a_pattern_is_a_name(tmp_path):
    folder = tmp_path / "in"
    write_events(folder / "b.csv", [GOOD[:4] + ("message_sent_to_customer", "<b>")])
    write_events(folder / "a.csv", [GOOD])
    env = make_env(tmp_path)
    run = runner.build(env, [str(folder)])
    assert [f.path for f in run.files] == [str(folder / "a.csv"), str(folder / "b.csv")]
    with pytest.raises(InputError, match="none-\\*.csv: file not found"):  # the shell expands patterns, not convo
        runner.build(env, [str(tmp_path / "none-*.csv")])


# -- one record per line: line numbers count every line, a bad line loses nothing after it ----
def _event(line: int, value: str = "<m>") -> str:
    """A good CSV line whose agent_id is its own line number."""
    return f"2024-05-02 9:00:00,30000000000001,501,{line},message_sent_to_customer,{value}"


def _write_lines(path, lines, end="\n"):
    path.write_bytes("".join(line + end for line in [",".join(HEADER), *lines]).encode())
    return path


def _build(tmp_path, path):
    """Build from one file: (staged (line, agent_id) pairs, rejected {line: (reason, raw_line)}, file counts)."""
    env = make_env(tmp_path)
    run = runner.build(env, [str(path)])
    staged = query(env, "SELECT source_line, agent_id FROM stg_conversation_events ORDER BY source_line")
    rejected = query(env, "SELECT source_line, reason, raw_line FROM rejected_conversation_events")
    f = run.files[0]
    return (
        [(r["source_line"], r["agent_id"]) for r in staged],
        {r["source_line"]: (r["reason"], r["raw_line"]) for r in rejected},
        (f.rows_read, f.rows_staged, f.rows_rejected, f.duplicates_removed),
    )


MISSING = "malformed CSV row: MISSING COLUMNS: Expected Number of Columns: 6 Found: "
TOO_MANY = "malformed CSV row: TOO MANY COLUMNS: Expected Number of Columns: 6 Found: "
OPEN_QUOTE = "malformed CSV row: UNQUOTED VALUE: Value with unterminated quote found."


def test_blank_lines_and_bad_lines_keep_every_later_line_number(tmp_path):
    # DuckDB's reader skips blank lines unseen and reads the rest of the file into an open quote.
    short, long_, open_quote = "2024-05-02 9:00:00,30000000000001,501", _event(5) + ",extra", _event(7, '"<m>')
    lines = [_event(2), "", short, long_, _event(6), open_quote, _event(8), _event(9), "   ", _event(11)]
    staged, rejected, counts = _build(tmp_path, _write_lines(tmp_path / "e.csv", lines))
    assert staged == [(2, 2), (6, 6), (8, 8), (9, 9), (11, 11)]
    assert rejected == {
        4: (MISSING + "3", short),
        5: (TOO_MANY + "7", long_),
        7: (OPEN_QUOTE, open_quote),
        10: (MISSING + "1", "   "),
    }
    assert counts == (9, 5, 4, 0)


def test_the_spark_readers_line_numbers_hold_on_duckdb(tmp_path):
    # The file of test_pyspark.py::test_line_numbers_count_blank_and_unsplittable_lines.
    lines = [_event(2), "", "2024-05-02 9:00:00,30000000000001,501", _event(5) + ",extra", _event(6)]
    staged, rejected, counts = _build(tmp_path, _write_lines(tmp_path / "e.csv", lines))
    assert staged == [(2, 2), (6, 6)]
    assert sorted(rejected) == [4, 5]
    assert counts == (4, 2, 2, 0)


def test_consecutive_bad_lines_in_a_file_read_in_one_pass(tmp_path, caplog):
    lines = [_event(2), "x,y", _event(4) + ",extra", _event(5), "1", "2", "3", _event(9), _event(10)]
    with caplog.at_level(logging.INFO, logger="convo.build.ingest"):
        staged, rejected, counts = _build(tmp_path, _write_lines(tmp_path / "e.csv", lines))
    assert "line by line" not in caplog.text  # DuckDB's parallel read was exact
    assert staged == [(2, 2), (5, 5), (9, 9), (10, 10)]
    assert {line: reason for line, (reason, _) in rejected.items()} == {
        3: MISSING + "2",
        4: TOO_MANY + "7",
        6: MISSING + "1",
        7: MISSING + "1",
        8: MISSING + "1",
    }
    assert counts == (9, 4, 5, 0)


@pytest.mark.parametrize("blank_line", [False, True], ids=["one pass", "line by line"])
def test_crlf_lines_and_quoted_fields_read_the_same_both_ways(tmp_path, caplog, blank_line):
    # A blank line makes DuckDB's count of rows miss a line: the file is read line by line.
    lines = [_event(2, '"Hello, ""you"""'), _event(3, ' "x" '), _event(4) + ",,", "a,b", _event(6)]
    if blank_line:
        lines.insert(1, "")
    with caplog.at_level(logging.INFO, logger="convo.build.ingest"):
        env = make_env(tmp_path)
        run = runner.build(env, [str(_write_lines(tmp_path / "e.csv", lines, end="\r\n"))])
    assert ("line by line" in caplog.text) == blank_line
    shift = int(blank_line)
    staged = query(env, "SELECT source_line, agent_id, event_value FROM stg_conversation_events ORDER BY 1")
    # Spaces around quotes are dropped and empty fields after the sixth ignored, as DuckDB's reader does.
    assert [tuple(r.values()) for r in staged] == [
        (2, 2, 'Hello, "you"'),
        (3 + shift, 3, "x"),
        (4 + shift, 4, "<m>"),
        (6 + shift, 6, "<m>"),
    ]
    rejected = query(env, "SELECT source_line, reason, raw_line FROM rejected_conversation_events")
    assert rejected == [{"source_line": 5 + shift, "reason": MISSING + "2", "raw_line": "a,b"}]
    f = run.files[0]
    assert (f.rows_read, f.rows_staged, f.rows_rejected, f.duplicates_removed) == (5, 4, 1, 0)
