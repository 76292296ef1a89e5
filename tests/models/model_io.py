"""What the model unit tests share: typed in-memory inputs, and a model's rows out.

Each input is an `ibis.memtable` typed with the schema that input has in a real build: a source's
as ingestion and the seed loader write it, a model's as the model upstream of it returns it (its
function applied to unbound tables of its own inputs' schemas, down to the sources). So a test
cannot hand a model a type a build never gives it, and a change to an upstream model's types
reaches the tests of the models that read it. Rows go in and out as plain Python values, executed
on an in-memory DuckDB: no runner, lock, Great Expectations or warehouse file.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable, Mapping

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from convo.models.registry import models, table_docs
from convo.models.staging import RAW_COLUMNS, accepted_events, parse_raw_events
from convo.models.vocabulary import AGENT_ASSIGNED

# `parse_raw_events`'s input as ingestion writes it (convo.build.ingest): the six fields as text,
# and where each row came from.
RAW_SCHEMA = ibis.schema(
    {**dict.fromkeys(RAW_COLUMNS, "string"), "source_file": "string", "source_line": "int64", "file_seq": "int64"}
)
# Wide enough for every hand-made event; the window's own rule has its tests in test_staging.py.
WINDOW = (datetime.datetime(2016, 1, 1), datetime.datetime(2099, 12, 31, 23, 59, 59))
SEED = "seed_tag_contact_reasons"
EVENTS_FILE = "events.csv"


@functools.cache
def schema_of(name: str) -> ibis.Schema:
    """The schema of input `name` in a real build: a source's, or the output of the model of that name."""
    if name == "accepted_events":
        return accepted_events(parse_raw_events(ibis.table(RAW_SCHEMA, name="raw"), WINDOW)).schema()
    if name == SEED:  # the seed loader reads the file with all_varchar (convo.build.seeds)
        return ibis.schema({c.name: "string" for c in table_docs()[SEED].columns if not c.load_time})
    m = models()[name]
    return m.fn(**{i: unbound(i) for i in m.inputs}).schema()


def table(name: str, given: Iterable[Mapping[str, object]] = ()) -> ir.Table:
    """The `given` rows as input `name`, typed with `schema_of(name)`; a column a row leaves out is NULL.

    A column name the input does not have is an error, so a typo cannot pass as a NULL.
    """
    return ibis.memtable(_arrow(name, given))


def _arrow(name: str, given: Iterable[Mapping[str, object]]) -> pa.Table:
    schema, given = schema_of(name), list(given)
    unknown = sorted({column for row in given for column in row} - set(schema.names))
    if unknown:
        raise ValueError(f"{name} has no column {', '.join(unknown)}")
    columns = {c: [row.get(c) for row in given] for c in schema.names}
    return pa.table(columns, schema=schema.to_pyarrow())  # typed as given, even with no row


def at(text: str) -> datetime.datetime:
    """'2024-01-01 9:05' -> a datetime (seconds optional), to keep the hand-made rows readable."""
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S" if text.count(":") == 2 else "%Y-%m-%d %H:%M")


def staged(*events: tuple) -> ir.Table:
    """`stg_conversation_events` from (conversation, time, user, agent, event, value) tuples (`staged_events`)."""
    return table("stg_conversation_events", staged_events(*events))


def staged_events(*events: tuple) -> list[dict]:
    """Rows of `stg_conversation_events` from (conversation, time, user, agent, event, value) tuples.

    The tuples are listed in staged order: each conversation's events are numbered 1, 2, ... in
    the order given (what `event_sequence` holds: time, then input order), so a test of a tie can
    put two events of the same second in the order it needs. An `agent_assigned` event's value is
    its assigned agent, as staging types it.
    """
    sequence: dict[int, int] = {}
    staged_rows = []
    for line, (conversation, time, user, agent, event, value) in enumerate(events, start=2):
        sequence[conversation] = sequence.get(conversation, 0) + 1
        staged_rows.append(
            {
                "event_id": f"{conversation}-{sequence[conversation]}",
                "conversation_id": conversation,
                "event_sequence": sequence[conversation],
                "event_at": at(time),
                "user_id": user,
                "agent_id": agent,
                "event": event,
                "event_value": value,
                "assigned_agent_id": int(value) if event == AGENT_ASSIGNED else None,
                "source_file": EVENTS_FILE,
                "source_line": line,
                "file_seq": 1,
            }
        )
    return staged_rows


@functools.cache
def _connection():
    # In memory: no file. One thread: these inputs are a few rows, and threads only add their start-up.
    return ibis.duckdb.connect(threads=1)


def _ordered(expr: ir.Table) -> ir.Table:
    # Sorted by every column, NULLs first, so that a comparison of rows ignores the engine's row order.
    return expr.order_by(*(ibis.asc(c, nulls_first=True) for c in expr.columns))


def rows(expr: ir.Table) -> list[dict]:
    """The rows of `expr` as dicts, sorted by every column (NULLs first)."""
    return _connection().to_pyarrow(_ordered(expr)).to_pylist()


def unbound(name: str) -> ir.Table:
    """Input `name` as a table with its schema and no data, to compile a model once (`compiled`)."""
    return ibis.table(schema_of(name), name=name)


def compiled(expr: ir.Table) -> str:
    """The SQL of `expr` (built on `unbound` inputs), rows sorted as `rows` sorts them.

    For property tests: Ibis takes about 0.1 s to compile a model, DuckDB a millisecond to run it
    on a few rows, so each example runs the SQL compiled once on its own input rows (`run`).
    """
    return str(_connection().compile(_ordered(expr)))


def run(sql: str, **inputs: Iterable[Mapping[str, object]]) -> list[dict]:
    """The rows of `compiled` SQL over the given rows of each named input (typed as `table` types them)."""
    duck = _connection().con
    for name, given in inputs.items():
        duck.register(name, _arrow(name, given))
    try:
        return duck.sql(sql).arrow().read_all().to_pylist()
    finally:
        for name in inputs:
            duck.unregister(name)


def by(key: str, found: list[dict]) -> dict[object, dict]:
    """Rows keyed by one column, each without it: `by("conversation_id", rows(...))[101]["status"]`."""
    keyed = {row[key]: {c: v for c, v in row.items() if c != key} for row in found}
    assert len(keyed) == len(found), f"{key} is not unique in these rows"
    return keyed
