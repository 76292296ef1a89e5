"""The same models on Spark: a PySpark build (local mode) gives the tables of the DuckDB build.

Needs Java 17 (setup.sh installs it). Every test shares one SparkSession: starting one costs
tens of seconds.
"""

import contextlib
import gzip
import io
import itertools
import shutil
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from conftest import HEADER, ROOT, UNREADABLE_FILES, make_env, write_events
from convo.build import ingest, runner
from convo.build.contract import LINE_TOO_LONG, LONG_LINE_SHOWN, MAX_LINE_BYTES, NOT_UTF8
from convo.cli import EXIT_BAD_INPUT, main
from convo.models.registry import table_docs
from generate import generate

if shutil.which("java") is None:
    pytest.skip(
        "JAVA IS MISSING: the PySpark tests did NOT run. Install Java 17 (./setup.sh does: openjdk-17-jre-headless).",
        allow_module_level=True,
    )

from pyspark.sql import functions as F  # noqa: E402

from convo.backends import spark as convo_spark  # noqa: E402  (imports pyspark, which needs Java to be useful)
from convo.backends import spark_reader  # noqa: E402

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


@pytest.fixture(scope="session", autouse=True)
def short_lived_jvm():
    """Every JVM these tests start (the shared session's, the CLI's) runs only the JIT's first tier:
    a third less CPU for JVMs that live a minute, though slower for longer builds (BENCHMARKS.md,
    "PySpark"), so the tests set it and `convo` does not."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JAVA_TOOL_OPTIONS", "-XX:TieredStopAtLevel=1")
        yield


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
def test_cli_pyspark_build_of_sample_edge_cases_and_generated_conversations_matches_duckdb(builds):
    assert builds.code == 0
    assert f"{SAMPLE}: 378 rows read = 373 staged + 3 rejected + 2 duplicates" in builds.printed
    assert "mart_contact_reasons_daily" in builds.printed
    assert builds.generated_partitions > 5  # so the line numbers compared come from several partitions
    assert_same_tables(builds.reference, builds.built)
    # The comparison covers the lines that cannot be split: there are some, of each kind.
    rejected = _spark_rows(builds.built, "rejected_conversation_events", builds.edge_csv)
    malformed = sorted((r["source_line"], r["reason"].split(":")[1].strip()) for r in rejected if r["raw_line"])
    assert malformed == [(16, "MISSING COLUMNS"), (18, "TOO MANY COLUMNS"), (19, "UNQUOTED VALUE")]


# -- the ingestion contract: the same rejected rows and counts from both readers ---------------
def _csv_bytes(lines: list[str], ending: str = "\n") -> bytes:
    return "".join(line + ending for line in lines).encode()


def _hostile_files(folder: Path) -> list[Path]:
    """Files that take every path of DuckDB's reader (its CSV reader with rejects, line by line in
    SQL, line by line in Python), with the lines each rule rejects. Line numbers in comments."""
    folder.mkdir()
    header = ",".join(HEADER)
    plain = folder / "plain.csv"  # no quote and no blank line: DuckDB's CSV reader reads it in one pass
    plain.write_bytes(
        _csv_bytes(
            [
                header,
                ",".join(GOOD),  # 2: staged
                ",".join(GOOD),  # 3: a duplicate
                ",".join(INVALID[1]),  # 4: no such month
                ",".join(INVALID[3]),  # 5: user_id is empty
                "2024-05-02 9:00:00,30000000000001,501",  # 6: 3 fields
                "2024-05-02 9:10:00,30000000000001,501,71,message_sent_to_customer,<m>,extra",  # 7: 7 fields
                "2024-05-02 9:20:00,30000000000003,502,,customer_message_received,<p>",  # 8: staged
            ]
        )
    )
    quoted = folder / "quoted lines.csv"
    quoted.write_bytes(
        "\ufeff".encode()
        + _csv_bytes(
            [
                header.upper(),
                '2024-05-02 9:01:00,30000000000001,501,71,message_sent_to_customer,"<m, ""quoted"">"',  # 2
                "",  # 3: blank
            ]
        )
        + b"\r\n"  # 4: blank, its end CRLF among LF ends
        + _csv_bytes(
            [
                '2024-05-02 9:02:00,30000000000001,501,71, "message_sent_to_customer" ,<m>',  # 5: staged
                '2024-05-02 9:03:00,30000000000001,501,71,message_sent_to_customer,"a"b',  # 6: text after a quote
                '2024-05-02 9:04:00,30000000000001,501,71,message_sent_to_customer,"unterminated',  # 7
                '2024-05-02 9:05:00,30000000000001,501,"a,b,message_sent_to_customer,<m>',  # 8: 7 fields
                'x,"a,"",b',  # 9: 3 fields ("a," is complete; the quote after it opens one left open)
                "2024-05-02 9:06:00,30000000000001,501,71,message_sent_to_customer,<t>,",  # 10: staged
                '2024-05-02 9:07:00,30000000000001,501,71,message_sent_to_customer,<t>,""',  # 11: staged
                "   ",  # 12: 1 field
                '"","","","","",""',  # 13: six empty fields: rejected by the rules of each field
                "a,b,c,d,e,f,g,,",  # 14: 9 fields
            ]
        )
        + b"2024-05-02 9:08:00,30000000000001,501,71,message_sent_to_customer,<last>"  # 15: no line end
    )
    permuted = [4, 5, 0, 1, 2, 3]  # event, event_value, then the rest
    rows = [
        [HEADER[i] for i in permuted],
        [("2024-05-02 9:30:00", "30000000000005", "505", "", "customer_message_received", "<g>")[i] for i in permuted],
        [GOOD[i] for i in permuted],  # 3: a duplicate of plain.csv's line 2
    ]
    text = _csv_bytes([",".join(r) for r in rows])
    text += b"customer_message_received,caf\xff\xfe,2024-05-02 9:31:00,30000000000006,506,\n"  # 4: not UTF-8
    text += b"customer_message_received,<h>,2024-05-02 9:32:00,30000000000006,506,\n"  # 5: staged
    packed = folder / "packed.csv.gz"
    packed.write_bytes(gzip.compress(text[:100]) + gzip.compress(text[100:]))  # two gzip members
    long = folder / "long[1].csv"
    long.write_bytes(
        _csv_bytes(
            [
                header,
                "2024-05-02 9:40:00,30000000000007,507,,customer_message_received,a\rb",  # 2: a lone CR is data
                "x" * (MAX_LINE_BYTES + 5),  # 3: too long
                "2024-05-02 9:41:00,30000000000007,507,,customer_message_received,<l>",  # 4: staged
                # 5: staged, 6: a quote left open; Java's regex engine recursed once per character
                # of such fields and overflowed its stack
                '2024-05-02 9:42:00,30000000000007,507,,customer_message_received,"' + 'ab""' * 15_000 + '"',
                '2024-05-02 9:43:00,30000000000007,507,,customer_message_received,"' + "x" * 200_000,
            ]
        )
    )
    parquet_rows = [GOOD, INVALID[2], ("2024-05-02 9:50:00", "30000000000008", "508", None, "tag_assigned", "x")]
    parquet = folder / "rows.parquet"
    pq.write_table(pa.table({name: [r[i] for r in parquet_rows] for i, name in enumerate(HEADER)}), parquet)
    again = folder / "again.csv"
    again.write_bytes(plain.read_bytes())  # the same content: skipped by both
    return [plain, quoted, packed, long, parquet, again]


def _rejected_and_files(duckdb_env, spark_env) -> tuple[list, list, list, list]:
    rejected_columns = "source_file, source_line, reason, raw_line"
    file_columns = "file_id, path, sha256, file_format, rows_read, rows_staged, rows_rejected, duplicates_removed"
    con = duckdb.connect(str(duckdb_env.warehouse), read_only=True)
    try:
        duck_rejected = con.execute(
            f"SELECT {rejected_columns} FROM rejected_conversation_events ORDER BY ALL"
        ).fetchall()
        duck_files = con.execute(f"SELECT {file_columns} FROM ingested_files ORDER BY file_id").fetchall()
    finally:
        con.close()
    folder = convo_spark.output_dir(spark_env)
    con = duckdb.connect()
    spark_rejected = con.execute(
        f"SELECT {rejected_columns} FROM read_parquet(?) ORDER BY ALL", [str(folder / "rejected_conversation_events")]
    ).fetchall()
    spark_files = con.execute(
        f"SELECT {file_columns} FROM read_parquet(?) ORDER BY file_id", [str(folder / "ingested_files")]
    ).fetchall()
    return duck_rejected, spark_rejected, duck_files, spark_files


def _blank_and_unsplittable_lines(path: Path) -> Path:
    """DuckDB's reader skips blank lines too; each staged row's agent_id is its own line number."""
    path.parent.mkdir()
    path.write_text(
        ",".join(HEADER) + "\n"
        "2024-05-02 9:00:00,30000000000001,501,2,message_sent_to_customer,<m>\n"
        "\n"
        "2024-05-02 9:00:00,30000000000001,501\n"
        "2024-05-02 9:00:00,30000000000001,501,5,message_sent_to_customer,<m>,extra\n"
        "2024-05-02 9:00:00,30000000000001,501,6,message_sent_to_customer,<m>\n"
    )
    return path


DECOY_CONVERSATION = 39999999999999


def _files_named_like_patterns(folder: Path) -> dict[str, int]:
    """Files whose names Spark would take as a glob (`star*.csv` would also read `starX.csv`,
    `brack[1].csv` would read `brack1.csv`), each beside a decoy holding a row no build may read.
    Returns each real file's path and the conversation its one row is in."""
    folder.mkdir()

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
        conversation = f"3000000000009{n}"
        for path, rows in (
            (folder / name, [row(conversation, "<m>")]),
            (folder / decoy, [row(str(DECOY_CONVERSATION), "x")]),
        ):
            if path.suffix == ".csv":
                write_events(path, rows)
            else:
                pd.DataFrame([dict(zip(HEADER, r, strict=True)) for r in rows]).to_parquet(path)
        expected[str(folder / name)] = int(conversation)
    return expected


@pytest.fixture(scope="module")
def builds(spark, tmp_path_factory) -> SimpleNamespace:
    """One build on each backend of every file the tests below read: the hostile files, a file
    of blank and unsplittable lines, files named like glob patterns (the ingestion contract),
    then the sample, the edge cases and generated conversations. One, because a Spark build costs
    about ten seconds whatever its input. The Spark build goes through `convo build --backend
    pyspark`, reading files in pieces, so that line numbers come from several partitions."""
    tmp = tmp_path_factory.mktemp("builds")
    hostile = [str(p) for p in _hostile_files(tmp / "in")]
    lines = str(_blank_and_unsplittable_lines(tmp / "lines" / "e.csv"))
    literal = _files_named_like_patterns(tmp / "patterns")
    edge_csv, edge_parquet = map(str, _edge_cases(tmp))
    generated = tmp / "events.csv"
    generate(1000, generated, seed=11)
    files = [*hostile, lines, *literal, str(SAMPLE), edge_csv, edge_parquet, str(generated)]
    reference, built = make_env(tmp, "duck"), make_env(tmp, "dev")
    runner.build(reference, files)
    results, build = [], convo_spark.build

    def kept_build(*args, **kwargs):  # the real build; the CLI prints its result, the tests read it too
        results.append(build(*args, **kwargs))
        return results[-1]

    printed = io.StringIO()
    spark.conf.set("spark.sql.files.maxPartitionBytes", "96k")
    try:
        with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
            patch.setattr(convo_spark, "build", kept_build)
            code = main(["build", "--backend", "pyspark", "--env", "dev", "--warehouse", str(built.warehouse), *files])
        partitions = spark.read.text(str(generated)).rdd.getNumPartitions()
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    return SimpleNamespace(
        hostile=hostile,
        lines=lines,
        literal=literal,
        edge_csv=edge_csv,
        reference=reference,
        built=built,
        code=code,
        printed=printed.getvalue(),
        result=results[0] if results else None,
        generated_partitions=partitions,
    )


def _spark_rows(built, table: str, source_file: str) -> list[dict]:
    return [
        r for r in pq.read_table(convo_spark.output_dir(built) / table).to_pylist() if r["source_file"] == source_file
    ]


def _counts(result, path: str) -> tuple[int, int, int, int]:
    (f,) = [f for f in result.files if str(f.path) == path]
    return f.rows_read, f.rows_staged, f.rows_rejected, f.duplicates_removed


def test_line_numbers_count_blank_and_unsplittable_lines(builds):
    c = builds
    staged = _spark_rows(c.built, "stg_conversation_events", c.lines)
    assert sorted((r["source_line"], r["agent_id"]) for r in staged) == [(2, 2), (6, 6)]
    assert sorted(r["source_line"] for r in _spark_rows(c.built, "rejected_conversation_events", c.lines)) == [4, 5]
    assert _counts(c.result, c.lines) == (4, 2, 2, 0)


def test_file_names_with_pattern_characters_are_read_literally(builds):
    c = builds
    staged = pq.read_table(convo_spark.output_dir(c.built) / "stg_conversation_events").to_pylist()
    assert {r["source_file"]: r["conversation_id"] for r in staged if r["source_file"] in c.literal} == c.literal
    assert DECOY_CONVERSATION not in {r["conversation_id"] for r in staged}
    assert [_counts(c.result, path)[:2] for path in c.literal] == [(1, 1)] * 4


def test_hostile_files_give_the_same_rejected_rows_and_counts_on_both_backends(builds):
    files, reference, built, result = (
        builds.hostile,
        builds.reference,
        builds.built,
        builds.result,
    )
    duck_rejected, spark_rejected, duck_files, spark_files = _rejected_and_files(reference, built)
    only_spark, only_duck = set(spark_rejected) - set(duck_rejected), set(duck_rejected) - set(spark_rejected)
    assert (sorted(only_spark), sorted(only_duck)) == ([], [])
    assert spark_rejected == duck_rejected  # row for row
    assert spark_files == duck_files
    assert result.skipped == [files[5]]
    # Worked out by hand from the comments in _hostile_files: read = staged + rejected + duplicates.
    assert [row[:2] + row[4:] for row in duck_files[:5]] == [
        (1, files[0], 7, 2, 4, 1),
        (2, files[1], 12, 5, 7, 0),
        (3, files[2], 4, 2, 1, 1),
        (4, files[3], 5, 3, 2, 0),
        (5, files[4], 3, 1, 1, 1),
    ]
    assert duck_files[2][3] == "csv"  # a gzipped CSV is a CSV
    found = "Expected Number of Columns: 6 Found: "
    malformed = "malformed CSV row: "
    lines = {(file, line): (reason, raw) for file, line, reason, raw in duck_rejected}
    assert {line: reason for (file, line), (reason, _) in lines.items() if file == files[1]} == {
        6: malformed + "UNQUOTED VALUE: Value with unterminated quote found.",
        7: malformed + "UNQUOTED VALUE: Value with unterminated quote found.",
        8: malformed + "TOO MANY COLUMNS: " + found + "7",
        9: malformed + "MISSING COLUMNS: " + found + "3",
        12: malformed + "MISSING COLUMNS: " + found + "1",
        13: lines[(files[1], 13)][0],  # the reasons of each empty field, checked below
        14: malformed + "TOO MANY COLUMNS: " + found + "9",
    }
    assert "event_timestamp" in lines[(files[1], 13)][0] and "user_id" in lines[(files[1], 13)][0]
    assert lines[(files[0], 6)][0] == malformed + "MISSING COLUMNS: " + found + "3"
    assert lines[(files[0], 7)][0] == malformed + "TOO MANY COLUMNS: " + found + "7"
    assert lines[(files[2], 4)] == (
        malformed + NOT_UTF8,
        "customer_message_received,caf??,2024-05-02 9:31:00,30000000000006,506,",
    )
    assert lines[(files[3], 3)] == (malformed + LINE_TOO_LONG, "x" * LONG_LINE_SHOWN)
    assert lines[(files[3], 6)][0] == malformed + "UNQUOTED VALUE: Value with unterminated quote found."


def test_spark_splits_every_short_line_as_duckdb_does(spark):
    # Every line of up to 7 characters from the characters that matter to splitting: 21,844 lines.
    lines = ["".join(chars) for n in range(1, 8) for chars in itertools.product('", a', repeat=n)]
    con = duckdb.connect()
    con.execute("CREATE TABLE lines AS SELECT unnest(?) AS text", [lines])
    duck = {
        text: (fields, reason)
        for text, fields, reason in con.execute(
            f"SELECT text, fields, reason FROM ({ingest._split_lines('SELECT text FROM lines')})"
        ).fetchall()
    }
    fields = spark_reader.record_fields(F.col("text"))
    reason = spark_reader.not_a_record(F.col("text"), fields)
    frame = spark.createDataFrame([(t,) for t in lines], "text string").select(
        "text", fields.alias("f"), reason.alias("r")
    )
    split = {row["text"]: (row["f"], row["r"]) for row in frame.collect()}
    assert len(split) == len(duck) == 21_844
    differ = [(t, duck[t], split[t]) for t in lines if split[t] != duck[t]]
    assert differ == []
    assert duck[',,,,,"'] == (None, "UNQUOTED VALUE: Value with unterminated quote found.")
    assert duck['"a"a'] == (None, "MISSING COLUMNS: Expected Number of Columns: 6 Found: 1")
    assert duck[",,,,, "] == ([""] * 5 + [" "], None)
    # "a," is a complete quoted field; the two quotes after it open one left open, not a "" inside it.
    assert duck['a,"a,""'] == (None, "MISSING COLUMNS: Expected Number of Columns: 6 Found: 2")


@pytest.mark.parametrize(("name", "content", "message"), UNREADABLE_FILES)
def test_a_file_that_cannot_be_read_fails_both_backends_alike(spark, tmp_path, capsys, name, content, message):
    bad = tmp_path / name
    if content is not None:
        bad.write_bytes(content)
    said = {}
    for backend in ("duckdb", "pyspark"):
        warehouse = str(tmp_path / backend / "dev.duckdb")
        code = main(["build", "--backend", backend, "--warehouse", warehouse, str(bad)])
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("convo:")]
        said[backend] = (code, errors)
    assert said["pyspark"] == said["duckdb"]
    assert said["duckdb"][0] == EXIT_BAD_INPUT
    assert said["duckdb"][1][-1].startswith(f"convo: {bad}: ") and message in said["duckdb"][1][-1]
    assert not convo_spark.output_dir(make_env(tmp_path / "pyspark", "dev")).exists()
