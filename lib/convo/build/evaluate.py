"""Evaluation: carries out one step of the plan (`plan.py`) through the store, one strategy per kind.

- a table by partition: the partitions are read from the changed rows of its inputs, the model is
  computed from every input row of those partitions, and the result merged over them;
- a table whole: computed from every input row and merged, or inserted when the table is empty
  (nothing to compare with);
- a view: nothing stored; its result names the partitions the audit checks;
- the ingestion tables and the seed: appended to, and merged whole.

Each step returns a typed result that the next steps and the audit's copies of the changed rows
(`changes.py`) read: the scratch tables a step wrote are named in its result, never guessed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import ibis

from convo.build.plan import ByPartition, Change, PartitionSource, Step, Unchanged, Whole
from convo.engine.store import Delta, Store
from convo.engine.warehouse import WORK, Warehouse
from convo.models.registry import Model, models

log = logging.getLogger(__name__)

STAGED = "stg_conversation_events"
EVENTS = "accepted_events"  # the source of the staged events: the ones staged already, and the new ones


@dataclass(frozen=True)
class ScratchTable:
    """A TEMP table that lives for the build's connection."""

    name: str

    @property
    def sql(self) -> str:
        return f'{WORK}."{self.name}"'


@dataclass(frozen=True)
class Staged:
    """What ingestion hands to the build: nothing of it is stored yet."""

    events: ScratchTable  # the new accepted events, unique and not staged before
    rows: int
    files: ScratchTable  # one row per ingested file, for `ingested_files`
    rejected: ScratchTable  # the rejected rows, for `rejected_conversation_events`
    snapshot: ScratchTable | None  # the live staged events of the new events' conversations (`StagedSnapshot`)


class StagedSnapshot:
    """Reads the live staged events of some conversations into a scratch table, once.

    Ingestion de-duplicates the new events against them, and the staged events' merge compares
    with them: the conversations a batch brings are the ones that merge recomputes, so the big
    table is scanned once for both.
    """

    def __init__(self, store: Store):
        self.store = store
        self.table: ScratchTable | None = None

    def __call__(self, conversations: str) -> ibis.Table:
        """The staged events of the conversations in column `conversation_id` of scratch table `conversations`."""
        self.table = ScratchTable(f"old_{STAGED}")
        in_batch = f'conversation_id IN (SELECT conversation_id FROM {WORK}."{conversations}")'
        self.store.snapshot(STAGED, self.table.name, in_batch)
        return self.store.wh.table(self.table.name, WORK)


@dataclass(frozen=True)
class Recomputed:
    """A stored table that was recomputed and merged (or inserted)."""

    name: str
    partitions: ScratchTable | None  # the partition values recomputed (column `value`); None: every partition
    recomputed: ScratchTable | None  # its rows there, = its live rows there after the merge; None: inserted straight
    delta: Delta
    live_rows: int
    seconds: float

    @property
    def change(self) -> Change | None:
        if self.delta.everything:
            return Change.WHOLE
        return Change.ROWS if self.delta.changed else None


@dataclass(frozen=True)
class ScopedView:
    """A view model whose rows may have changed: in `partitions`, or everywhere (None)."""

    name: str
    partitions: ScratchTable | None
    from_recomputed: bool  # the recomputed rows of each input cover its partitions


@dataclass(frozen=True)
class Kept:
    """A model none of whose rows can have changed."""

    name: str


Evaluated = Recomputed | ScopedView | Kept


@dataclass
class Evaluation:
    """A build's evaluation so far: what it staged, and what each step did."""

    store: Store
    version: int
    staged: Staged | None
    results: dict[str, Evaluated] = field(default_factory=dict)

    def changes(self) -> dict[str, Change]:
        """How each source and each model evaluated so far changed (absent: not at all)."""
        changed = {name: r.change for name, r in self.results.items() if isinstance(r, Recomputed) and r.change}
        if self.staged is not None and self.staged.rows:
            changed[EVENTS] = Change.ROWS
        return changed


# -- the ingestion tables and the seeds --------------------------------------------------------
def append_ingested(ev: Evaluation) -> None:
    """Append the new files and rejected rows: ingestion records never change once written."""
    assert ev.staged is not None
    ev.store.append("ingested_files", ev.staged.files.name, ev.version)
    ev.store.append("rejected_conversation_events", ev.staged.rejected.name, ev.version)


def merge_seed(ev: Evaluation, name: str, rows: ibis.Table, key: tuple[str, ...]) -> Recomputed:
    """Make a seed table equal to `rows` (small: compared whole)."""
    t0 = time.perf_counter()
    new = ScratchTable(f"{name}_new")
    ev.store.wh.materialize(new.name, rows)
    delta = ev.store.merge(name, new.name, key=key, old_filter=None, version=ev.version)
    result = Recomputed(name, None, new, delta, ev.store.live_count(name), time.perf_counter() - t0)
    ev.results[name] = result
    return result


# -- models -----------------------------------------------------------------------------------
def evaluate(ev: Evaluation, step: Step) -> Evaluated:
    """Carry out `step`; its result is kept in `ev` for the steps after it."""
    t0 = time.perf_counter()
    m = step.model
    partitions = None
    match step.recompute:
        case Unchanged():
            result: Evaluated = Kept(m.name)
        case Whole():
            result = _view(ev, m, None) if m.materialized == "view" else _table(ev, m, None, t0)
        case ByPartition(sources):
            partitions = _partitions(ev, m, sources)
            if partitions is None:  # the changed rows hold no partition value
                result = Kept(m.name)
            else:
                result = _view(ev, m, partitions) if m.materialized == "view" else _table(ev, m, partitions, t0)
    if isinstance(result, Kept) and m.materialized == "table":
        log.info("%s: no input changed", m.name)
    elif isinstance(result, Recomputed):
        d = result.delta
        scope = "all partitions" if partitions is None else f"{_count(ev, partitions)} partitions"
        if isinstance(step.recompute, Whole):
            scope += f" ({step.recompute.reason})"
        log.info(
            "%s: %d rows (+%d -%d) from %s in %.2f s",
            m.name,
            result.live_rows,
            d.inserted,
            d.retired,
            scope,
            result.seconds,
        )
    ev.results[m.name] = result
    return result


def _count(ev: Evaluation, table: ScratchTable) -> int:
    return ev.store.wh.scalar(f"SELECT count(*) FROM {table.sql}")


def _changed_rows(ev: Evaluation, name: str) -> ScratchTable:
    """The scratch table of an input's changed rows: the new events, or a model's merge delta."""
    if name == EVENTS:
        assert ev.staged is not None
        return ev.staged.events
    result = ev.results[name]
    # The plan recomputes whole any model reading an input that was inserted whole (no delta rows).
    assert isinstance(result, Recomputed) and result.delta.table is not None, name
    return ScratchTable(result.delta.table)


def _partitions(ev: Evaluation, m: Model, sources: tuple[PartitionSource, ...]) -> ScratchTable | None:
    """The distinct partition values the changed rows of `sources` name; None if they name none."""
    changed = ev.changes()
    parts = [
        f'SELECT "{col}" AS value FROM {_changed_rows(ev, s.input).sql} WHERE "{col}" IS NOT NULL'
        for s in sources
        if s.input in changed
        for col in s.columns
    ]
    if not parts:
        return None
    partitions = ScratchTable(f"touched_{m.name}")
    ev.store.wh.materialize(partitions.name, "SELECT DISTINCT value FROM (" + " UNION ALL ".join(parts) + ")")
    return partitions if _count(ev, partitions) else None


def _covering_rows(ev: Evaluation, m: Model, name: str, partitions: ScratchTable | None) -> ScratchTable | None:
    """The recomputed rows of input `name`, when model `m` can read them instead of the stored table:
    `m` reads it by its partition column, within the partitions it recomputed."""
    upstream, upstream_model = ev.results.get(name), models().get(name)
    if (
        partitions is None
        or upstream_model is None
        or not isinstance(upstream, Recomputed)
        or upstream.partitions is None
        or upstream.recomputed is None
        or m.scope.get(name) != (upstream_model.partition,)
    ):
        return None
    outside = f"SELECT count(*) FROM {partitions.sql} WHERE value NOT IN (SELECT value FROM {upstream.partitions.sql})"
    return upstream.recomputed if ev.store.wh.scalar(outside) == 0 else None


def _events(ev: Evaluation, partitions: ScratchTable | None) -> ibis.Table:
    """The accepted events: the staged ones (of the recomputed conversations, read while staging,
    when there is such a snapshot) and the new ones."""
    store, staged = ev.store, ev.staged
    new = ev.store.wh.table(staged.events.name, WORK) if staged is not None else None
    if partitions is not None and staged is not None and staged.snapshot is not None:
        old = store.wh.table(staged.snapshot.name, WORK).drop("event_sequence")
    else:
        old = store.live(STAGED).drop("event_sequence") if store.live_count(STAGED) else None
    if old is not None and new is not None:
        return old.select(*new.columns).union(new)
    return old if new is None else new


def _input(ev: Evaluation, m: Model, name: str, partitions: ScratchTable | None) -> ibis.Table:
    """Input `name` of model `m`, restricted by its scope to `partitions` (None: every row)."""
    if name == EVENTS:
        table = _events(ev, partitions)
    elif (rows := _covering_rows(ev, m, name, partitions)) is not None:
        table = ev.store.wh.table(rows.name, WORK)
    else:
        table = ev.store.live(name)
    scope = m.scope.get(name)
    if partitions is None or not scope:
        return table
    values = ev.store.wh.table(partitions.name, WORK).value
    return table.filter(ibis.or_(*(table[c].isin(values) for c in scope)))


def _table(ev: Evaluation, m: Model, partitions: ScratchTable | None, t0: float) -> Recomputed:
    """Recompute table model `m` in `partitions` (None: whole) and merge it into version `ev.version`."""
    store, wh = ev.store, ev.store.wh
    old_filter, old = None, None
    if partitions is not None:
        old_filter = f'"{m.partition}" IN (SELECT value FROM {partitions.sql})'
        snapshot = ev.staged.snapshot if m.name == STAGED and ev.staged is not None else None
        if snapshot is not None:  # read while staging, for the conversations of the batch
            wh.execute(f"DELETE FROM {snapshot.sql} WHERE NOT ({old_filter})")
            old = snapshot
        elif store.live_count(m.name):  # the rows being recomputed, read once
            old = ScratchTable(f"old_{m.name}")
            store.snapshot(m.name, old.name, old_filter)
    expr = m.fn(**{i: _input(ev, m, i, partitions) for i in m.inputs})
    if partitions is not None:
        expr = expr.filter(expr[m.partition].isin(wh.table(partitions.name, WORK).value))
    recomputed = None
    if partitions is None and store.live_count(m.name) == 0:
        delta = store.insert(m.name, wh.compile(expr), ev.version)  # nothing to compare with: no copy
    else:
        recomputed = ScratchTable(f"new_{m.name}")
        wh.materialize(recomputed.name, expr)
        key = m.doc.primary_key
        old_name = old.name if old is not None else None
        delta = store.merge(m.name, recomputed.name, key=key, old_filter=old_filter, version=ev.version, old=old_name)
    return Recomputed(m.name, partitions, recomputed, delta, store.live_count(m.name), time.perf_counter() - t0)


def _view(ev: Evaluation, m: Model, partitions: ScratchTable | None) -> ScopedView:
    covered = partitions is not None and all(_covering_rows(ev, m, i, partitions) for i in m.inputs)
    return ScopedView(m.name, partitions, from_recomputed=covered)


# -- views ------------------------------------------------------------------------------------
def view_sql(wh: Warehouse, m: Model, schema: str) -> str:
    """The SQL of view model `m` over its inputs in `schema`."""
    return wh.compile(m.fn(**{i: wh.table(i, schema) for i in m.inputs}))


def create_views(wh: Warehouse, schema: str) -> None:
    """(Re)define the view models in `schema` over the tables of that same schema."""
    for m in models().values():
        if m.materialized == "view":
            wh.execute(f'CREATE OR REPLACE VIEW {schema}."{m.name}" AS {view_sql(wh, m, schema)}')
