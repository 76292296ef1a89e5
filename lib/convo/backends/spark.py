"""Full builds on Apache Spark (local mode): the same model functions, written as Parquet datasets.

`convo build --backend pyspark` reads the same input files as the DuckDB runner, with Spark,
applies the same staging functions and models through Ibis's PySpark backend, and writes every
documented table to `<warehouse dir>/<env>-pyspark/<table>/`. Every build is a full build (the
full plan of `build/plan.py`): incremental merges, versions, audits, publishing and rollback need
the DuckDB store (README, "Backends"). The output directory is replaced only once every table is
written.

Ingestion follows the contract of `build/contract.py`, as the DuckDB runner does: the same file
checks, the same rejected rows and the same counts; every data row is staged, rejected (with its
file, line and reason) or counted as a duplicate of an earlier row (first occurrence by file
order, then line). Reading the files is `spark_reader.py`.
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
from pyspark.sql import SparkSession

from convo.backends import spark_reader
from convo.build import contract
from convo.build.plan import plan
from convo.build.seeds import read_tag_contact_reasons
from convo.config import Environment
from convo.engine.state import FileRecord
from convo.files import replace_directory
from convo.lock import exclusive
from convo.models.registry import models
from convo.models.staging import RAW_COLUMNS, accepted_events, deduplicate_events, parse_raw_events

log = logging.getLogger(__name__)

# Tables written by ingestion rather than by a model.
REJECTED, FILES, SEED = "rejected_conversation_events", "ingested_files", "seed_tag_contact_reasons"
_SEED_COLUMNS = ("tag", "contact_reason", "category")


@dataclass(frozen=True)
class TableResult:
    name: str
    rows: int
    seconds: float


@dataclass
class BuildResult:
    output: Path
    files: list[FileRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # inputs whose content another input already had
    ignored: list[Path] = field(default_factory=list)  # entries of an input directory that are not read
    tables: list[TableResult] = field(default_factory=list)
    ingest_seconds: float = 0.0  # reading, parsing and de-duplicating the inputs
    seconds: float = 0.0

    def summary(self) -> list[str]:
        """Per-file counts and per-table rows and seconds, as the DuckDB build prints them."""
        lines = [f"  {path}: {contract.not_read(path)}" for path in self.ignored]
        lines += [f"  {path}: skipped: same content as an earlier input" for path in self.skipped]
        lines += [f"  {f.summary()}" for f in self.files]
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


# -- build ------------------------------------------------------------------------------------
class _Writer:
    """Writes Ibis expressions as Parquet datasets and reads them back as tables for what follows."""

    def __init__(self, con, folder: Path):
        self.con, self.folder = con, folder

    def write(self, name: str, expr: ibis.Table) -> ibis.Table:
        path = self.folder / name
        self.con.to_parquet(expr, path, mode="overwrite")
        return self.con.read_parquet(path, table_name=name)


def build(env: Environment, inputs: list[str] | None = None) -> BuildResult:
    """Build every table from `inputs` (default: the environment's) into `output_dir(env)`.

    Runs on the process's active SparkSession if there is one (a notebook's, the tests'), else
    starts a local one and stops it afterwards.
    """
    names = list(inputs) if inputs else list(env.inputs)
    final = output_dir(env)
    with exclusive(final, env.name, "build --backend pyspark"):
        listing = contract.expand(names)
        for path in listing.ignored:
            log.warning("%s: %s", path, contract.not_read(path))
        if not listing.files:
            raise contract.InputError("no input file: none given, and the environment's `inputs` name none")
        # Open until every table is written: Spark reads the files through these descriptors.
        with contract.inspected(listing.files) as files:
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
        result.ignored = listing.ignored
        return result


def _write_tables(
    spark: SparkSession, env: Environment, inputs: list[contract.InputFile], building: Path
) -> BuildResult:
    t_build = time.perf_counter()
    result = BuildResult(building)
    files, repeated = contract.first_of_each_content(inputs)
    for f in repeated:
        log.info("%s: skipped: same content as an earlier input", f.path)
    result.skipped = [str(f.path) for f in repeated]
    con = ibis.pyspark.connect(spark)
    out, scratch = _Writer(con, building), _Writer(con, building / "_scratch")

    def timed(name: str, expr: ibis.Table) -> ibis.Table:
        t0 = time.perf_counter()
        table = out.write(name, expr)
        rows = _row_count(building / name)
        result.tables.append(TableResult(name, rows, time.perf_counter() - t0))
        log.info("%s: %d rows in %.2f s", name, rows, result.tables[-1].seconds)
        return table

    for f in files:
        log.info("reading %s (%s, %.1f MB)", f.path, f.file_format, f.path.stat().st_size / 1e6)
    # Computed once: line numbers come from the physical layout of the read, so they are fixed
    # before anything else reads them.
    spark_reader.land(spark, files, building / "_scratch" / "inputs").createOrReplaceTempView("landed_rows")
    landed = scratch.write("landed", con.table("landed_rows"))
    raw = landed.filter(landed.malformed.isnull()).select(*RAW_COLUMNS, "source_file", "source_line", "file_seq")
    parsed = scratch.write(
        "parsed", parse_raw_events(raw, env.event_window.bounds(datetime.datetime.now(datetime.UTC)))
    )
    tables = {"accepted_events": scratch.write("accepted_events", deduplicate_events(accepted_events(parsed)))}
    result.ingest_seconds = time.perf_counter() - t_build
    log.info("inputs read, parsed and de-duplicated in %.2f s", result.ingest_seconds)
    bad = landed.filter(landed.malformed.notnull())
    rejected = timed(REJECTED, contract.rejected_rows(parsed, bad.mutate(reason=bad.malformed)))
    result.files = _file_counts(files, landed, rejected, tables["accepted_events"])
    timed(FILES, contract.ingested_files(result.files))
    seed = ibis.memtable(read_tag_contact_reasons(env.seeds_dir), schema=dict.fromkeys(_SEED_COLUMNS, "string"))
    tables[SEED] = timed(SEED, seed)
    every_model = plan(models(), {}, full_refresh=True, never_written=frozenset())
    for step in every_model.steps:
        m = step.model
        # A view model is written like a table: a folder of Parquet files cannot hold a view.
        tables[m.name] = timed(m.name, m.fn(**{i: tables[i] for i in m.inputs}))
    shutil.rmtree(building / "_scratch")
    result.seconds = time.perf_counter() - t_build
    return result


def _file_counts(
    files: list[contract.InputFile], landed: ibis.Table, rejected: ibis.Table, staged: ibis.Table
) -> list[FileRecord]:
    """The contract's counts of each file (counted in one Spark job)."""

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
        c = contract.counted(
            file_id,
            f,
            read=n.get(("read", file_id), 0),
            staged=n.get(("staged", file_id), 0),
            rejected=n.get(("rejected", file_id), 0),
        )
        log.info("%s", c.summary())
        counts.append(c)
    return counts


def _row_count(dataset: Path) -> int:
    """From the Parquet footers: cheaper than a Spark job per table."""
    return sum(pq.read_metadata(part).num_rows for part in dataset.glob("*.parquet"))
