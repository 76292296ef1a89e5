"""Small column helpers shared by the models. Every backend-specific spelling lives here.

The models run unchanged on DuckDB and on Spark (Ibis's PySpark backend). Where Ibis has no
operation that means the same on both, this module defines one and gives it its SQL on each
engine, so a model calls one helper whatever the engine. Another engine needs its own
translation of these operations (README, "Backends").
"""

from __future__ import annotations

import string

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops
import ibis.expr.rules as rlz
import ibis.expr.types as ir
import sqlglot.expressions as sge
from ibis.backends.sql.compilers.base import NULL
from ibis.backends.sql.compilers.duckdb import DuckDBCompiler
from ibis.backends.sql.compilers.pyspark import PySparkCompiler

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
INTEGER_PATTERN = r"^[+-]?[0-9]+$"

# What DuckDB's strptime accepts for TIMESTAMP_FORMAT: 1-4 digit year, 1-2 digit other fields,
# any run of whitespace between date and time. Spark's parser cannot bound a field's width
# ('H' also reads '009'), so on Spark the text must have this shape before it is parsed.
_TIMESTAMP_SHAPE = r"^\s*([0-9]{1,4})-([0-9]{1,2})-([0-9]{1,2})\s+([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})\s*$"
_SPARK_CANONICAL, _SPARK_FORMAT = "$1-$2-$3 $4:$5:$6", "y-M-d H:m:s"


def _translated(*, duckdb, pyspark):
    """Give an operation its SQL on each engine (a compiler looks up `visit_<class name>`)."""

    def register(op: type[ops.Value]) -> type[ops.Value]:
        setattr(DuckDBCompiler, f"visit_{op.__name__}", duckdb)
        setattr(PySparkCompiler, f"visit_{op.__name__}", pyspark)
        return op

    return register


def _duckdb_parse_timestamp(compiler, op, *, arg):
    return compiler.f.try_strptime(arg, TIMESTAMP_FORMAT)


def _spark_parse_timestamp(compiler, op, *, arg):
    # try_to_timestamp checks the calendar (2023-02-29, 24:00:00 -> NULL) as DuckDB does.
    canonical = compiler.f.regexp_replace(arg, _TIMESTAMP_SHAPE, _SPARK_CANONICAL)
    parsed = compiler.f.try_to_timestamp(canonical, _SPARK_FORMAT)
    return compiler.if_(compiler.f.rlike(arg, _TIMESTAMP_SHAPE), parsed, NULL)


@_translated(duckdb=_duckdb_parse_timestamp, pyspark=_spark_parse_timestamp)
class ParseTimestamp(ops.Value):
    """Text in TIMESTAMP_FORMAT -> timestamp; NULL when it does not parse (Ibis's own raises)."""

    arg: ops.Value[dt.String]

    shape = rlz.shape_like("arg")
    dtype = dt.timestamp


def _duckdb_strip(compiler, op, *, arg):
    # DuckDB's trim with a set of characters costs about as much as the rest of parsing, and almost
    # no field needs it: it runs only when the first byte is a control character or a space (text
    # compares byte by byte: below '!') or the text ends with a character of string.whitespace.
    # Both tests read a byte or two in place; taking the last character with right() copied it.
    edge = arg.__lt__(sge.convert("!"))
    for character in string.whitespace:
        edge = edge.or_(compiler.f.suffix(arg, sge.convert(character)))
    return compiler.if_(edge, compiler.f.trim(arg, string.whitespace), arg)


def _spark_strip(compiler, op, *, arg):
    # Ibis's strip() writes the characters as the literal ' \t\n\r\v\f', and Spark reads '\v' and
    # '\f' as the letters v and f ('feature_request' -> 'eature_request'); CHR() is unambiguous.
    return compiler.f.btrim(arg, compiler.f.concat(*(compiler.f.chr(ord(c)) for c in string.whitespace)))


@_translated(duckdb=_duckdb_strip, pyspark=_spark_strip)
class StripWhitespace(ops.Value):
    """Text without leading and trailing whitespace (space, tab, LF, CR, VT, FF)."""

    arg: ops.Value[dt.String]

    shape = rlz.shape_like("arg")
    dtype = dt.string


def _duckdb_contains_nul(compiler, op, *, arg):
    return compiler.f.contains(arg, compiler.f.chr(0))  # a plain search: a regular expression costs 3x


def _spark_contains_nul(compiler, op, *, arg):
    return compiler.f.regexp_like(arg, r"\x00")


@_translated(duckdb=_duckdb_contains_nul, pyspark=_spark_contains_nul)
class ContainsNul(ops.Value):
    """Whether the text holds a NUL character."""

    arg: ops.Value[dt.String]

    shape = rlz.shape_like("arg")
    dtype = dt.boolean


_UUID_GROUPS = r"^(.{8})(.{4})(.{4})(.{4})(.{12})$", "$1-$2-$3-$4-$5"


def _duckdb_md5_uuid(compiler, op, *, arg):
    return compiler.cast(compiler.f.md5(arg), dt.uuid)


def _spark_md5_uuid(compiler, op, *, arg):
    return compiler.f.regexp_replace(compiler.f.md5(arg), *_UUID_GROUPS)  # Spark has no UUID type: its text


@_translated(duckdb=_duckdb_md5_uuid, pyspark=_spark_md5_uuid)
class Md5Uuid(ops.Value):
    """The MD5 of the text as a 128-bit UUID: its 32 hex digits, shown in the groups of a UUID."""

    arg: ops.Value[dt.String]

    shape = rlz.shape_like("arg")
    dtype = dt.uuid


def contains_nul(text: ir.StringValue) -> ir.BooleanValue:
    return ContainsNul(text).to_expr()


def md5_uuid(text: ir.StringValue) -> ir.UUIDValue:
    """MD5 of the text as a UUID (16 bytes): grouping, joining and storing it costs far less than
    its 32 hex characters as text, which are longer than DuckDB keeps inline."""
    return Md5Uuid(text).to_expr()


def parse_timestamp(text: ir.StringValue) -> ir.TimestampValue:
    """`2019-04-04 1:18:45` -> timestamp (UTC, no zone); NULL when it does not parse."""
    return ParseTimestamp(text).to_expr()


def strip_whitespace(text: ir.StringValue) -> ir.StringValue:
    """Ibis's `strip()`, with the same result on Spark."""
    return StripWhitespace(text).to_expr()


def parse_integer(text: ir.StringValue) -> ir.IntegerValue:
    """Whole-number text -> BIGINT; NULL for anything else ('12.5', '1e3', 'abc', overflow)."""
    return ibis.ifelse(text.re_search(INTEGER_PATTERN), text.try_cast("int64"), ibis.null("int64"))


def date_key(ts: ir.TimestampValue | ir.DateValue) -> ir.IntegerValue:
    """yyyymmdd as an integer, the key of dim_date."""
    return (ts.year() * 10000 + ts.month() * 100 + ts.day()).cast("int32")


def seconds_between(start: ir.TimestampValue, end: ir.TimestampValue) -> ir.FloatingValue:
    """Seconds from start to end, as a float64 so that dividing it (by 3600.0) gives a float64 on
    every engine: Spark SQL reads a literal such as 3600.0 as a DECIMAL and would return a decimal
    rounded to 6 places, where DuckDB divides as doubles."""
    return (end.epoch_seconds() - start.epoch_seconds()).cast("float64")
