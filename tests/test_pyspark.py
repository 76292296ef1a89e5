"""The same models on Spark: a PySpark build (local mode) gives the tables of the DuckDB build.

Needs Java 17 (setup.sh installs it). Every test shares one SparkSession: starting one costs
tens of seconds.
"""

import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import HEADER, ROOT, make_env, write_events
from convo.build import runner
from convo.cli import main
from convo.models.registry import table_docs
from generate import generate

if shutil.which("java") is None:
    pytest.skip(
        "JAVA IS MISSING: the PySpark tests did NOT run. Install Java 17 (./setup.sh does: openjdk-17-jre-headless).",
        allow_module_level=True,
    )

from convo.backends import spark as convo_spark  # noqa: E402  (imports pyspark, which needs Java to be useful)

pytestmark = [pytest.mark.slow, pytest.mark.spark]

SAMPLE = ROOT / "seeds" / "raw_conversation_events.csv"
GOOD = ("2024-05-02 9:00:00", "30000000000001", "501", "", "customer_message_received", "<m>")
# A row of each kind that is rejected, and valid rows that an engine could parse differently;
# lines that cannot be split follow them (see _edge_cases).
INVALID = [
    GOOD,
    ("2024-13-01 9:00:00", "30000000000002", "501", "", "customer_message_received", "<m>"),
    ("2024-05-02 9:00:00", "3000000000000x", "501", "", "customer_message_received", "<m>"),
    ("2024-05-02 9:00:00", "30000000000002", "", "", "customer_message_received", "<m>"),
    ("2024-05-02 9:00:00", "30000000000002", "501", "7.5", "message_sent_to_customer", "<m>"),
    ("2024-05-02 9:00:00", "30000000000002", "501", "7", "  ", "<m>"),
    ("2024-05-02 9:00:00", "30000000000002", "501", "7", "agent_assigned", "bob"),
    ("", "", "501", "7", "status_changed_to", ""),
    ("2024-5-2 13:8:5", "30000000000001", "501", "71", "tag_assigned", "login"),  # short fields parse
    ("2024-05-02 009:00:00", "30000000000001", "501", "71", "tag_assigned", "login"),  # too many digits
    ("2023-02-29 9:00:00", "30000000000001", "501", "71", "tag_assigned", "login"),  # no such day
    (" 2024-05-02 9:00:00 ", "30000000000001", " 501", "", "Customer_Message_Received ", "<m>"),  # = GOOD
    ("2024-05-02 9:09:00", "30000000000001", "501", "71", "message_sent_to_customer", '<m, "quoted">'),
    ("2024-05-02 9:13:00", "30000000000001", "501", "71", "tag_assigned", "\x0bfeature_request\x0c\t"),  # whitespace
]


@pytest.fixture(scope="session")
def spark():
    """The active session: every build in this module runs on it instead of starting its own."""
    session = convo_spark.start_session(threads=2, memory_limit="2GB")
    yield session
    session.stop()


def _edge_cases(tmp_path: Path) -> list[Path]:
    """A CSV with every kind of invalid and unsplittable row, then a Parquet file repeating some."""
    csv_file = write_events(tmp_path / "edge.csv", INVALID)
    with csv_file.open("a", newline="") as f:
        f.write("2024-05-02 9:00:00,30000000000001,501\r\n")  # line 16: too few fields
        f.write("2024-05-02 9:11:00,30000000000001,501,71,status_changed_to, Closed\r\n")
        f.write("2024-05-02 9:10:00,30000000000001,501,71,message_sent_to_customer,<m>,extra\r\n")  # too many
        f.write('2024-05-02 9:12:00,30000000000001,501,71,message_sent_to_customer,"unterminated\r\n')
    parquet_rows = [
        GOOD,
        INVALID[2],
        ("2024-05-02 9:20:00", "30000000000003", "502", None, "customer_message_received", "<p>"),
    ]
    parquet_file = tmp_path / "edge.parquet"
    pq.write_table(pa.table({name: [r[i] for r in parquet_rows] for i, name in enumerate(HEADER)}), parquet_file)
    return [csv_file, parquet_file]


# -- comparing the two builds -----------------------------------------------------------------
def _normalised(table: pa.Table) -> pa.Table:
    """The same values in the same types whatever the engine: int64, float64, naive UTC µs timestamps."""
    columns = []
    for column in table.columns:
        t = column.type
        if pa.types.is_timestamp(t):
            column = pc.cast(column, pa.timestamp("us", tz=t.tz)).cast(pa.timestamp("us"))  # tz-aware -> UTC wall time
        elif pa.types.is_integer(t):
            column = column.cast(pa.int64())
        elif pa.types.is_floating(t):
            column = column.cast(pa.float64())
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def _frame(table: pa.Table, doc) -> pd.DataFrame:
    columns = [c.name for c in doc.columns if not c.load_time]
    frame = _normalised(table.select(columns)).to_pandas()
    return frame.sort_values(list(doc.primary_key)).reset_index(drop=True)


def _duckdb_tables(env) -> dict[str, pa.Table]:
    con = duckdb.connect(str(env.warehouse), read_only=True)
    try:
        return {name: con.execute(f'SELECT * FROM main."{name}"').to_arrow_table() for name in table_docs()}
    finally:
        con.close()


def _spark_tables(env) -> dict[str, pa.Table]:
    folder = convo_spark.output_dir(env)
    return {p.name: pq.read_table(p) for p in sorted(folder.iterdir())}


def assert_same_tables(duckdb_env, spark_env) -> None:
    """Every documented table, every column but those set at load time, equal up to float rounding."""
    reference, built = _duckdb_tables(duckdb_env), _spark_tables(spark_env)
    assert sorted(built) == sorted(table_docs())
    for name, doc in table_docs().items():
        expected_columns = [c.name for c in doc.columns if not c.load_time]
        assert built[name].column_names == expected_columns, name
        assert built[name].num_rows == reference[name].num_rows, name
        pd.testing.assert_frame_equal(
            _frame(built[name], doc), _frame(reference[name], doc), check_exact=False, rtol=1e-9, obj=name
        )


# -- tests ------------------------------------------------------------------------------------
def test_cli_pyspark_build_of_sample_and_edge_cases_matches_duckdb(spark, tmp_path, capsys):
    files = [str(SAMPLE), *map(str, _edge_cases(tmp_path))]
    reference, built = make_env(tmp_path, "duck"), make_env(tmp_path, "dev")
    runner.build(reference, files)
    assert main(["build", "--backend", "pyspark", "--env", "dev", "--warehouse", str(built.warehouse), *files]) == 0
    printed = capsys.readouterr().out
    assert f"{SAMPLE}: 378 rows read = 373 staged + 3 rejected + 2 duplicates" in printed
    assert "mart_contact_reasons_daily" in printed
    assert_same_tables(reference, built)
    # The comparison covers the lines that cannot be split: there are some, of each kind.
    rejected = pq.read_table(convo_spark.output_dir(built) / "rejected_conversation_events").to_pylist()
    malformed = sorted((r["source_line"], r["reason"].split(":")[1].strip()) for r in rejected if r["raw_line"])
    assert malformed == [(16, "MISSING COLUMNS"), (18, "TOO MANY COLUMNS"), (19, "UNQUOTED VALUE")]


def test_generated_conversations_match_duckdb(spark, tmp_path):
    events = tmp_path / "events.csv"
    generate(3000, events, seed=11)
    reference, built = make_env(tmp_path, "duck"), make_env(tmp_path, "spark")
    runner.build(reference, [str(events)])
    # Read in pieces, so the line numbers compared below come from several partitions.
    spark.conf.set("spark.sql.files.maxPartitionBytes", "256k")
    try:
        assert spark.read.text(str(events)).rdd.getNumPartitions() > 5
        convo_spark.build(built, [str(events)])
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert_same_tables(reference, built)


def test_line_numbers_count_blank_and_unsplittable_lines(spark, tmp_path):
    # DuckDB's reader skips blank lines too; here each staged row's agent_id is its own line number.
    path = tmp_path / "e.csv"
    path.write_text(
        ",".join(HEADER) + "\n"
        "2024-05-02 9:00:00,30000000000001,501,2,message_sent_to_customer,<m>\n"
        "\n"
        "2024-05-02 9:00:00,30000000000001,501\n"
        "2024-05-02 9:00:00,30000000000001,501,5,message_sent_to_customer,<m>,extra\n"
        "2024-05-02 9:00:00,30000000000001,501,6,message_sent_to_customer,<m>\n"
    )
    env = make_env(tmp_path)
    result = convo_spark.build(env, [str(path)])
    staged = pq.read_table(convo_spark.output_dir(env) / "stg_conversation_events").to_pylist()
    assert [(r["source_line"], r["agent_id"]) for r in staged] == [(2, 2), (6, 6)]
    rejected = pq.read_table(convo_spark.output_dir(env) / "rejected_conversation_events").to_pylist()
    assert [r["source_line"] for r in rejected] == [4, 5]
    f = result.files[0]
    assert (f.rows_read, f.rows_staged, f.rows_rejected, f.duplicates_removed) == (4, 2, 2, 0)


def test_file_names_with_pattern_characters_are_read_literally(spark, tmp_path):
    # Spark takes `*?[]{}` as a glob: `star*.csv` would also read `starX.csv`, `brack[1].csv` would
    # read `brack1.csv`. Each decoy beside a real file holds a row the build must never see.
    def row(conversation, text):
        return ("2024-05-02 9:00:00", conversation, "501", "", "customer_message_received", text)

    expected = {}
    for n, (name, decoy) in enumerate(
        (
            ("star*.csv", "starX.csv"),
            ("brack[1].csv", "brack1.csv"),
            ("q?.csv", "qX.csv"),
            ("p{a,b}.parquet", "pa.parquet"),
        )
    ):
        conversation = f"3000000000000{n}"
        for path, rows in (
            (tmp_path / name, [row(conversation, "<m>")]),
            (tmp_path / decoy, [row("39999999999999", "x")]),
        ):
            if path.suffix == ".csv":
                write_events(path, rows)
            else:
                pd.DataFrame([dict(zip(HEADER, r, strict=True)) for r in rows]).to_parquet(path)
        expected[str(tmp_path / name)] = int(conversation)
    env = make_env(tmp_path)
    result = convo_spark.build(env, list(expected))
    staged = pq.read_table(convo_spark.output_dir(env) / "stg_conversation_events").to_pylist()
    assert {r["source_file"]: r["conversation_id"] for r in staged} == expected
    assert [(f.rows_read, f.rows_staged) for f in result.files] == [(1, 1)] * 4
