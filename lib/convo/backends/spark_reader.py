"""Spark's reader of input files, under the ingestion contract (`build/contract.py`).

Every data line of a CSV file (plain or gzipped) becomes one landed row with its line number:
either its six raw fields, or why it is not a record (the contract's split rule and reasons, as
DuckDB's reader gives them); every row of a Parquet file becomes one landed row with its row
number. Lines are read in parallel; Spark never takes them through Python.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from convo.build import contract
from convo.build.contract import InputError, InputFile
from convo.models.staging import RAW_COLUMNS

# A monotonically increasing id holds the partition index above this bit, the row's position
# inside the partition below it (Spark's documented layout).
_PARTITION_SHIFT = 33
# The contract's patterns in forms Java's regex engine matches without recursing per character
# (the contract's `(?:[^"]|"")*` overflows the JVM's stack on a long quoted field, which kills
# the whole Spark driver in local mode). Same matches, where they are used:
# - a field: possessive loops match what the contract's greedy loop matches, because a complete
#   field is followed by spaces, a comma or the line's end, never by a quote (where backtracking
#   would have ended the quoted field earlier);
# - removing complete quoted fields before counting commas: pairing each quote with the next one
#   removes the same characters as removing the longest quoted fields with "" inside them (the
#   quotes inside those come in adjacent pairs, with nothing between the pairs' quotes).
_QUOTED = '"[^"]*+(?:""[^"]*+)*+"'
_FIELD = contract.FIELD.replace(contract.QUOTED, _QUOTED)
_QUOTE_PAIR = '"[^"]*"'
assert _FIELD != contract.FIELD, "the contract's quoted-field pattern changed: translate it here"


def source_name(f: InputFile, file_id: int, folder: Path) -> str:
    """A name Spark reads as this one file: the descriptor the contract checked and hashed.

    Spark takes `*?[]{}` in a path as a glob pattern (and `:` as a scheme), and Spark's JVM is
    another process, to which `/proc/self` is itself; so it reads a link with a plain name to this
    process's descriptor. The link's suffix tells Spark the compression."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = "csv.gz" if f.gzipped else f.file_format
    link = folder / f"file-{file_id}.{suffix}"
    link.symlink_to(f.read_name.replace("/proc/self/", f"/proc/{os.getpid()}/", 1))
    return str(link)


def numbered_lines(spark: SparkSession, files: list[tuple[int, InputFile, str]]) -> DataFrame:
    """Every line (`\\n` or `\\r\\n` ends one, as in the contract) of the CSV files (file id, file,
    the name Spark reads), with its file id and 1-based number, read in parallel (RDD.zipWithIndex's
    method, without taking the lines through Python).

    Spark reads one file's splits into partitions in file order, so a line's number is the count
    of lines in the file's earlier partitions plus its position in its own. One job counts the
    lines of every file's partitions (a union keeps each file's own partition numbers); each file
    then looks its partitions' first lines up in a map of its own.
    """
    partition = F.shiftright("id", _PARTITION_SHIFT)

    def read(file_id: int, source: str) -> DataFrame:
        lines = spark.read.text(source, lineSep="\n")  # Spark's default also ends a line at a lone \r
        return lines.select(
            F.lit(file_id).cast("bigint").alias("file_seq"),
            F.col("value").alias("text"),
            F.monotonically_increasing_id().alias("id"),
        )

    reads = {file_id: read(file_id, source) for file_id, _, source in files}
    counted = functools.reduce(DataFrame.unionByName, reads.values())
    sizes = counted.groupBy("file_seq", partition.alias("partition")).count().orderBy("file_seq", "partition")
    firsts: dict[int, list] = {file_id: [] for file_id in reads}
    read_lines = dict.fromkeys(reads, 0)
    for size in sizes.collect():
        file_id = size["file_seq"]
        firsts[file_id] += [F.lit(size["partition"]), F.lit(read_lines[file_id] + 1)]
        read_lines[file_id] += size["count"]
    position = F.col("id") - F.shiftleft(partition, _PARTITION_SHIFT)
    text = F.col("text")
    without_cr = F.when(text.endswith("\r"), text.substr(F.lit(1), F.length(text) - 1)).otherwise(text)
    numbered = []
    for file_id, f, _ in files:
        if read_lines[file_id] != f.lines:
            raise InputError(f"{f.path}: Spark read {read_lines[file_id]} lines where the file has {f.lines}")
        first_line = F.element_at(F.create_map(*firsts[file_id]), partition)
        numbered.append(
            reads[file_id].select("file_seq", (first_line + position).alias("line"), without_cr.alias("text"))
        )
    return functools.reduce(DataFrame.unionByName, numbered)


def record_fields(text: Column) -> Column:
    """The line's fields, unquoted; NULL when its quotes do not make a record. With `not_a_record`,
    the contract's split rule, as `ingest._split_lines` writes it for DuckDB."""

    def unquoted(field: Column) -> Column:
        trimmed = F.trim(field)  # spaces only, as DuckDB's trim
        inner = trimmed.substr(F.lit(2), F.length(trimmed) - 2)
        return F.when(F.ltrim(field).startswith('"'), F.replace(inner, F.lit('""'), F.lit('"'))).otherwise(field)

    return F.when(~text.contains('"'), F.split(text, ",", -1)).when(
        text.rlike(f"^(?:{_FIELD})(?:,(?:{_FIELD}))*\\z"),
        F.transform(F.regexp_extract_all(F.concat(text, F.lit(",")), F.lit(f"({_FIELD}),"), 1), unquoted),
    )


def not_a_record(text: Column, fields: Column) -> Column:
    """Why the line is not a record, from its `record_fields`; NULL when it is one."""
    n = len(RAW_COLUMNS)
    extra = F.size(F.filter(fields, lambda field, i: (i >= n) & (field != "")))
    found = (
        F.when(fields.isNull(), F.size(F.split(F.regexp_replace(text, _QUOTE_PAIR, ""), ",", -1)))
        .when(extra == 0, F.least(F.size(fields), F.lit(n)))  # empty fields after the sixth are ignored
        .otherwise(F.size(fields))
    )
    counted = F.concat(F.lit(contract.FOUND_COLUMNS), found.cast("string"))
    return (
        F.when(found < n, F.concat(F.lit(contract.MISSING_COLUMNS + ": "), counted))
        .when(found > n, F.concat(F.lit(contract.TOO_MANY_COLUMNS + ": "), counted))
        .when(fields.isNull(), F.lit(contract.UNQUOTED_VALUE))
    )


def land_csv(lines: DataFrame) -> DataFrame:
    """Raw fields of every data line of `numbered_lines`' rows (of any number of files), or why
    the line is not a record (`malformed`, with the line as `raw_line`). Lines after the header;
    empty lines are skipped, but counted. Split once for every file: Spark plans and compiles
    these expressions per DataFrame, which costs seconds per file on its own."""
    lines = lines.filter((F.col("line") > 1) & (F.col("text") != ""))
    text = F.col("text")
    too_long = F.octet_length(text) > contract.MAX_LINE_BYTES
    # Named once and read by name below: an expression used several times is then computed once.
    lines = lines.select("*", record_fields(text).alias("fields"), too_long.alias("too_long"))
    fields, too_long = F.col("fields"), F.col("too_long")
    split_reason = not_a_record(text, fields)
    # A line that is not text is shown with each bad byte sequence as `?`, as DuckDB's reader shows it.
    shown = F.replace(F.make_valid_utf8(text), F.lit("\ufffd"), F.lit("?"))
    not_text = too_long | ~F.is_valid_utf8(text)
    malformed = (
        F.when(too_long, F.lit(contract.LINE_TOO_LONG)).when(not_text, F.lit(contract.NOT_UTF8)).otherwise(split_reason)
    )
    lines = lines.select("*", malformed.alias("malformed"))
    malformed = F.col("malformed")
    raw_line = (
        F.when(too_long, shown.substr(1, contract.LONG_LINE_SHOWN))
        .when(not_text, shown)
        .when(malformed.isNotNull(), text)
    )
    return lines.select(
        *(
            F.when(malformed.isNull(), F.nullif(F.try_element_at(fields, F.col(f"{c}_at")), F.lit(""))).alias(c)
            for c in RAW_COLUMNS
        ),
        "source_file",
        F.col("line").alias("source_line"),
        "file_seq",
        raw_line.alias("raw_line"),
        malformed,
    )


def land_parquet(spark: SparkSession, f: InputFile, file_id: int, source: str) -> DataFrame:
    """Every row as text; its line is the 1-based row number, as in DuckDB's reader."""
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


def land(spark: SparkSession, files: list[InputFile], links: Path) -> DataFrame:
    """Every data row of every file (numbered 1, 2, ... in the order given), in one DataFrame."""
    csv, landed = [], []
    for file_id, f in enumerate(files, start=1):
        source = source_name(f, file_id, links)
        if f.file_format == "csv":
            csv.append((file_id, f, source))
        else:
            landed.append(land_parquet(spark, f, file_id, source))
    if csv:

        def by_file(value) -> Column:  # value(file) of each line's file
            pairs = [x for file_id, f, _ in csv for x in (F.lit(file_id), F.lit(value(f)))]
            return F.element_at(F.create_map(*pairs), F.col("file_seq"))

        # Each file's name, and its columns' positions (the contract allows them in any order).
        lines = numbered_lines(spark, csv).select(
            "*",
            by_file(lambda f: str(f.path)).alias("source_file"),
            *(by_file(lambda f, c=c: f.columns.index(c) + 1).alias(f"{c}_at") for c in RAW_COLUMNS),
        )
        landed.insert(0, land_csv(lines))
    return functools.reduce(DataFrame.unionByName, landed)
