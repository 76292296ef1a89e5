"""Full builds on Apache Spark (local mode): the same model functions, written as Parquet datasets.

`convo build --backend pyspark` reads the same input files as the DuckDB runner, with Spark,
applies the same staging functions and models through Ibis's PySpark backend, and writes every
documented table to `<warehouse dir>/<env>-pyspark/<table>/`. Every build is a full build:
incremental merges, versions, audits, publishing and rollback need the DuckDB store (README,
"Backends"). The output directory is replaced only once every table is written.

Ingestion keeps the DuckDB contract: every data row is staged, rejected (with its file, line and
reason) or counted as a duplicate of an earlier row (first occurrence by file order, then line).
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from convo.build import ingest
from convo.build.seeds import read_tag_contact_reasons
from convo.config import Environment
from convo.files import replace_directory
from convo.lock import exclusive
from convo.models.registry import models
from convo.models.staging import RAW_COLUMNS, accepted_events, deduplicate_events, parse_raw_events

log = logging.getLogger(__name__)

# Tables written by ingestion rather than by a model.
REJECTED, FILES, SEED = "rejected_conversation_events", "ingested_files", "seed_tag_contact_reasons"
_SEED_COLUMNS = ("tag", "contact_reason", "category")

# A monotonically increasing id holds the partition index above this bit, the row's position
# inside the partition below it (Spark's documented layout).
_PARTITION_SHIFT = 33
_CSV_OPTIONS = {"sep": ",", "quote": '"', "escape": '"', "mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt"}
# A complete quoted field ("" escapes a quote inside it); what remains after removing them is
# plain text whose commas separate fields.
_QUOTED_FIELD = r'"([^"]|"")*"'
_UNTERMINATED_QUOTE = r'(^|,)"'


@dataclass(frozen=True)
class TableResult:
    name: str
    rows: int
    seconds: float


@dataclass
class BuildResult:
    output: Path
    files: list[ingest.FileCounts] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # inputs whose content another input already had
    tables: list[TableResult] = field(default_factory=list)
    ingest_seconds: float = 0.0  # reading, parsing and de-duplicating the inputs
    seconds: float = 0.0

    def summary(self) -> list[str]:
        """Per-file counts and per-table rows and seconds, as the DuckDB build prints them."""
        lines = [f"  {path}: skipped: same content as an earlier input" for path in self.skipped]
        lines += [
            f"  {f.path}: {f.rows_read:,} rows read = {f.rows_staged:,} staged + {f.rows_rejected:,} rejected"
            f" + {f.duplicates_removed:,} duplicates"
            for f in self.files
        ]
        width = max(len(t.name) for t in self.tables)
        lines.append(f"  inputs read, parsed and de-duplicated in {self.ingest_seconds:.2f} s")
        lines.append(f"  {'table':<{width}}  {'rows':>12}  seconds")
        lines += [f"  {t.name:<{width}}  {t.rows:>12,}  {t.seconds:7.2f}" for t in self.tables]
        lines.append(f"pyspark build: {len(self.tables)} tables written to {self.output} in {self.seconds:.1f} s")
        return lines


def output_dir(env: Environment) -> Path:
    return env.warehouse.parent / f"{env.name}-pyspark"


# -- session ----------------------------------------------------------------------------------
def start_session(threads: int = 2, memory_limit: str = "4GB") -> SparkSession:
    """A local SparkSession: `threads` cores, UTC, no UI, managed tables in a throw-away folder."""
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise RuntimeError("the pyspark backend needs Java 17: install it (./setup.sh does) or set JAVA_HOME")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # skips the loopback-address warning
    spark = (
        SparkSession.builder.master(f"local[{threads}]")
        .appName("convo")
        .config("spark.driver.memory", _jvm_size(memory_limit))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Nothing here writes a managed table (Spark creates the folder only then); should anything,
        # it must not land in the working directory, Spark's default (./spark-warehouse).
        .config("spark.sql.warehouse.dir", str(Path(tempfile.gettempdir()) / "convo-spark-warehouse"))
        # Ibis hands in-memory tables (dim_date's calendar, the seed) to Spark as pandas frames.
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # The default, 200 partitions per shuffle, is sized for a cluster; one per core here.
        .config("spark.sql.shuffle.partitions", str(threads))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _jvm_size(memory_limit: str) -> str:
    """convo.toml's memory_limit ('4GB', '512MB') in the JVM's notation ('4g', '512m')."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT])i?B?\s*", memory_limit, re.IGNORECASE)
    if not match:
        raise ValueError(f"memory_limit {memory_limit!r}: expected a size such as 4GB or 512MB")
    return f"{match[1]}{match[2].lower()}"


# -- ingestion --------------------------------------------------------------------------------
def _inspect(paths: list[Path]) -> list[ingest.InputFile]:
    """Check every file can be read before Spark starts on them (the rules of `ingest.inspect`)."""
    checked = []
    for path in paths:
        if not path.exists():
            raise ingest.InputError(f"{path}: file not found")
        if not path.is_file():
            raise ingest.InputError(f"{path}: not a regular file")
        file_format = ingest.FORMATS.get(path.suffix.lower())
        if file_format is None:
            raise ingest.InputError(f"{path}: unsupported file type {path.suffix!r}; expected .csv or .parquet")
        columns = ingest.csv_columns(path) if file_format == "csv" else _parquet_columns(path)
        checked.append(ingest.InputFile(path, file_format, ingest.sha256(path), columns))
    return checked


def _parquet_columns(path: Path) -> tuple[str, ...]:
    # The footer alone, with pyarrow: a broken file fails here with one clear line instead of
    # a failed Spark job and its stack traces.
    try:
        names = [n.lower() for n in pq.read_schema(path).names]
    except Exception as exc:  # pyarrow raises several exception types for unreadable files
        raise ingest.InputError(f"{path}: not a readable Parquet file ({exc})") from None
    if sorted(names) != sorted(RAW_COLUMNS):
        raise ingest.InputError(f"{path}: wrong columns {names}; expected {list(RAW_COLUMNS)}")
    return tuple(names)


def _distinct_content(files: list[ingest.InputFile], result: BuildResult) -> list[ingest.InputFile]:
    """The first file of each content; the DuckDB runner skips a repeated file the same way."""
    seen, distinct = set(), []
    for f in files:
        if f.sha256 in seen:
            log.info("%s: skipped: same content as an earlier input", f.path)
            result.skipped.append(str(f.path))
            continue
        seen.add(f.sha256)
        distinct.append(f)
    return distinct


def _numbered_lines(spark: SparkSession, path: str) -> DataFrame:
    """The file's lines with their 1-based number, read in parallel (RDD.zipWithIndex's method,
    without taking the lines through Python).

    Spark reads one file's splits into partitions in file order, so a line's number is the count
    of lines in earlier partitions plus its position in its own.
    """
    lines = spark.read.text(path).select(F.col("value").alias("text"), F.monotonically_increasing_id().alias("id"))
    partition = F.shiftright("id", _PARTITION_SHIFT)
    sizes = lines.groupBy(partition.alias("partition")).count().orderBy("partition").collect()
    first, offsets = 1, []
    for size in sizes:
        offsets.append((size["partition"], first))
        first += size["count"]
    starts = spark.createDataFrame(offsets, "partition BIGINT, first_line BIGINT")
    position = F.col("id") - F.shiftleft(partition, _PARTITION_SHIFT)
    return lines.join(F.broadcast(starts), partition == starts.partition).select(
        (F.col("first_line") + position).alias("line"), "text"
    )


def _land_csv(spark: SparkSession, f: ingest.InputFile, file_id: int, source: str) -> DataFrame:
    """Raw fields of every data line, or why the line cannot be split into the six fields.

    Lines after the header; empty lines are skipped, as DuckDB's reader does. A quoted field
    cannot span lines (line numbers rest on one row per line, on DuckDB too).
    """
    lines = _numbered_lines(spark, source).filter((F.col("line") > 1) & (F.col("text") != ""))
    schema = ", ".join(f"`{c}` STRING" for c in f.columns) + ", _corrupt STRING"
    row = F.from_csv("text", schema, _CSV_OPTIONS)
    unquoted = F.regexp_replace("text", _QUOTED_FIELD, "")
    found = F.size(F.split(unquoted, ",", -1))
    counts = F.concat(F.lit(f"Expected Number of Columns: {len(RAW_COLUMNS)} Found: "), found.cast("string"))
    # Spark marks a wrong field count as corrupt but reads an unterminated quote to the line's
    # end; DuckDB rejects both, with these error types.
    malformed = (
        F.when(row["_corrupt"].isNotNull() & (found < len(RAW_COLUMNS)), F.concat(F.lit("MISSING COLUMNS: "), counts))
        .when(row["_corrupt"].isNotNull(), F.concat(F.lit("TOO MANY COLUMNS: "), counts))
        .when(unquoted.rlike(_UNTERMINATED_QUOTE), F.lit("UNQUOTED VALUE: Value with unterminated quote found."))
    )
    return lines.select(
        *(F.when(malformed.isNull(), row[c]).alias(c) for c in RAW_COLUMNS),
        F.lit(str(f.path)).alias("source_file"),
        F.col("line").alias("source_line"),
        F.lit(file_id).cast("bigint").alias("file_seq"),
        F.when(malformed.isNotNull(), F.col("text")).alias("raw_line"),
        malformed.alias("malformed"),
    )


def _land_parquet(spark: SparkSession, f: ingest.InputFile, file_id: int, source: str) -> DataFrame:
    """Every row as text; its line is the 1-based row number, as in the DuckDB runner."""
    rows = spark.read.parquet(source)
    actual = {c.lower(): c for c in rows.columns}
    return rows.select(
        *(F.col(f"`{actual[c]}`").cast("string").alias(c) for c in RAW_COLUMNS),
        F.lit(str(f.path)).alias("source_file"),
        (F.col("_metadata.row_index") + 1).alias("source_line"),
        F.lit(file_id).cast("bigint").alias("file_seq"),
        F.lit(None).cast("string").alias("raw_line"),
        F.lit(None).cast("string").alias("malformed"),
    )


class _Writer:
    """Writes Ibis expressions as Parquet datasets and reads them back as tables for what follows."""

    def __init__(self, con, folder: Path):
        self.con, self.folder = con, folder

    def write(self, name: str, expr: ibis.Table) -> ibis.Table:
        path = self.folder / name
        self.con.to_parquet(expr, path, mode="overwrite")
        return self.con.read_parquet(path, table_name=name)


def _land(spark, con, files: list[ingest.InputFile], scratch: _Writer) -> ibis.Table:
    """Every data row of every file, numbered, in one landed table (computed once: line numbers
    come from the physical layout of the read, so they are fixed before anything else reads them)."""
    landed = None
    for file_id, f in enumerate(files, start=1):
        log.info("reading %s (%s, %.1f MB)", f.path, f.file_format, f.path.stat().st_size / 1e6)
        source = _literal_source(f, file_id, scratch.folder / "inputs")
        rows = (_land_csv if f.file_format == "csv" else _land_parquet)(spark, f, file_id, source)
        landed = rows if landed is None else landed.unionByName(rows)
    landed.createOrReplaceTempView("landed_rows")
    return scratch.write("landed", con.table("landed_rows"))


def _literal_source(f: ingest.InputFile, file_id: int, folder: Path) -> str:
    """A name Spark reads as this one file. Spark takes `*?[]{}` in a path as a glob pattern (and
    `:` as a scheme), so it reads a link with a plain name to the file instead of the file's name."""
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / f"file-{file_id}.{f.file_format}"
    link.symlink_to(f.path.resolve())
    return str(link)


def _rejected(parsed: ibis.Table, landed: ibis.Table) -> ibis.Table:
    """Rows that cannot be staged and lines that cannot be split: the shape of the DuckDB table."""
    invalid = parsed.filter(parsed.reject_reason.notnull()).select(
        file_id=parsed.file_seq,
        source_file=parsed.source_file,
        source_line=parsed.source_line,
        **{c: parsed[c] for c in RAW_COLUMNS},
        raw_line=ibis.null("string"),
        reason=parsed.reject_reason,
    )
    bad = landed.filter(landed.malformed.notnull())
    malformed = bad.select(
        file_id=bad.file_seq,
        source_file=bad.source_file,
        source_line=bad.source_line,
        **{c: ibis.null("string") for c in RAW_COLUMNS},
        raw_line=bad.raw_line,
        reason="malformed CSV row: " + bad.malformed,
    )
    return invalid.union(malformed).order_by(["file_id", "source_line"])


def _file_counts(
    files: list[ingest.InputFile], landed: ibis.Table, rejected: ibis.Table, staged: ibis.Table
) -> list[ingest.FileCounts]:
    """Rows read = staged + rejected + duplicates, per file (counted in one Spark job)."""

    def per_file(table: ibis.Table, column: str, kind: str) -> ibis.Table:
        return table.group_by(file=table[column]).aggregate(n=table.count()).mutate(kind=ibis.literal(kind))

    counted = ibis.union(
        per_file(landed, "file_seq", "read"),
        per_file(rejected, "file_id", "rejected"),
        per_file(staged, "file_seq", "staged"),
    ).execute()
    n = {(row.kind, row.file): row.n for row in counted.itertuples()}
    counts = []
    for file_id, f in enumerate(files, start=1):
        c = ingest.FileCounts(
            file_id,
            str(f.path),
            n.get(("read", file_id), 0),
            n.get(("staged", file_id), 0),
            n.get(("rejected", file_id), 0),
        )
        c.duplicates_removed = c.rows_read - c.rows_staged - c.rows_rejected
        counts.append(c)
        log.info(
            "%s: %d rows read = %d staged + %d rejected + %d duplicates",
            f.path,
            c.rows_read,
            c.rows_staged,
            c.rows_rejected,
            c.duplicates_removed,
        )
    return counts


def _ingested_files(files: list[ingest.InputFile], counts: list[ingest.FileCounts]) -> ibis.Table:
    return ibis.memtable(
        {
            "file_id": [c.file_id for c in counts],
            "path": [str(f.path) for f in files],
            "sha256": [f.sha256 for f in files],
            "file_format": [f.file_format for f in files],
            "rows_read": [c.rows_read for c in counts],
            "rows_staged": [c.rows_staged for c in counts],
            "rows_rejected": [c.rows_rejected for c in counts],
            "duplicates_removed": [c.duplicates_removed for c in counts],
        },
        schema={
            "file_id": "int64",
            "path": "string",
            "sha256": "string",
            "file_format": "string",
            "rows_read": "int64",
            "rows_staged": "int64",
            "rows_rejected": "int64",
            "duplicates_removed": "int64",
        },
    )


# -- build ------------------------------------------------------------------------------------
def build(env: Environment, inputs: list[str] | None = None) -> BuildResult:
    """Build every table from `inputs` (default: the environment's) into `output_dir(env)`.

    Runs on the process's active SparkSession if there is one (a notebook's, the tests'), else
    starts a local one and stops it afterwards.
    """
    patterns = list(inputs) if inputs else list(env.inputs)
    final = output_dir(env)
    with exclusive(final, env.name, "build --backend pyspark"):
        files = _inspect(ingest.expand(patterns).files)
        if not files:
            raise ingest.InputError(f"no input file in {' '.join(patterns) or 'the environment inputs'}")
        active = SparkSession.getActiveSession()
        spark = active or start_session(env.threads, env.memory_limit)
        building = final.with_name(final.name + ".building")
        shutil.rmtree(building, ignore_errors=True)  # left by a build that failed or died
        try:
            result = _write_tables(spark, env, files, building)
        finally:
            if active is None:
                spark.stop()
        replace_directory(final, building)
        result.output = final
        return result


def _write_tables(spark: SparkSession, env: Environment, files: list[ingest.InputFile], building: Path) -> BuildResult:
    t_build = time.perf_counter()
    result = BuildResult(building)
    files = _distinct_content(files, result)
    con = ibis.pyspark.connect(spark)
    out, scratch = _Writer(con, building), _Writer(con, building / "_scratch")

    def timed(name: str, expr: ibis.Table) -> ibis.Table:
        t0 = time.perf_counter()
        table = out.write(name, expr)
        rows = _row_count(building / name)
        result.tables.append(TableResult(name, rows, time.perf_counter() - t0))
        log.info("%s: %d rows in %.2f s", name, rows, result.tables[-1].seconds)
        return table

    landed = _land(spark, con, files, scratch)
    raw = landed.filter(landed.malformed.isnull()).select(*RAW_COLUMNS, "source_file", "source_line", "file_seq")
    parsed = scratch.write(
        "parsed", parse_raw_events(raw, env.event_window.bounds(datetime.datetime.now(datetime.UTC)))
    )
    tables = {"accepted_events": scratch.write("accepted_events", deduplicate_events(accepted_events(parsed)))}
    result.ingest_seconds = time.perf_counter() - t_build
    log.info("inputs read, parsed and de-duplicated in %.2f s", result.ingest_seconds)
    rejected = timed(REJECTED, _rejected(parsed, landed))
    result.files = _file_counts(files, landed, rejected, tables["accepted_events"])
    timed(FILES, _ingested_files(files, result.files))
    seed = ibis.memtable(read_tag_contact_reasons(env.seeds_dir), schema=dict.fromkeys(_SEED_COLUMNS, "string"))
    tables[SEED] = timed(SEED, seed)
    for m in models().values():
        # A view model is written like a table: a folder of Parquet files cannot hold a view.
        tables[m.name] = timed(m.name, m.fn(**{i: tables[i] for i in m.inputs}))
    shutil.rmtree(building / "_scratch")
    result.seconds = time.perf_counter() - t_build
    return result


def _row_count(dataset: Path) -> int:
    """From the Parquet footers: cheaper than a Spark job per table."""
    return sum(pq.read_metadata(part).num_rows for part in dataset.glob("*.parquet"))
