"""Small column helpers shared by the models. Every backend-specific spelling lives here."""

from __future__ import annotations

import datetime

import ibis
import ibis.expr.types as ir

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
_INTEGER_PATTERN = r"^[+-]?[0-9]+$"


@ibis.udf.scalar.builtin
def try_strptime(value: str, fmt: str) -> datetime.datetime:
    """DuckDB's TRY_STRPTIME: NULL instead of an error when the text does not parse."""


def parse_timestamp(text: ir.StringValue) -> ir.TimestampValue:
    """`2019-04-04 1:18:45` -> timestamp (UTC, no zone); NULL when it does not parse."""
    return try_strptime(text, TIMESTAMP_FORMAT)


def parse_integer(text: ir.StringValue) -> ir.IntegerValue:
    """Whole-number text -> BIGINT; NULL for anything else ('12.5', '1e3', 'abc', overflow)."""
    return ibis.ifelse(text.re_search(_INTEGER_PATTERN), text.try_cast("int64"), ibis.null("int64"))


def date_key(ts: ir.TimestampValue | ir.DateValue) -> ir.IntegerValue:
    """yyyymmdd as an integer, the key of dim_date."""
    return (ts.year() * 10000 + ts.month() * 100 + ts.day()).cast("int32")


def seconds_between(start: ir.TimestampValue, end: ir.TimestampValue) -> ir.IntegerValue:
    return end.epoch_seconds() - start.epoch_seconds()

