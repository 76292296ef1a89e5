"""The plan: which partitions of which model a build recomputes, decided from what changed.

Pure: no warehouse, no I/O. The inputs are the models (their partition column and scopes,
`models/registry.py`), what changed (`Change` of each source or model), and the stored state the
runner read beforehand (which tables were never written). The rules, for one model:

1. a full refresh, or a table never written (nothing to compare with): recompute it whole;
2. none of its inputs changed: unchanged;
3. no partition column, an input rewritten whole, or a changed input it reads unscoped: whole;
4. otherwise by partition: the partitions are the values, in the changed rows of each changed
   input, of the columns its scope names for that input.

A view gets a step too: nothing is stored, but the audit checks the partitions it names.

`plan` gives every step before anything runs, assuming each recomputed model changes (the most a
build can do). A build decides each step with `decide` once the changes of the model's inputs are
known, which can only narrow the plan: a model whose recomputation changed no row leaves the
models that read it unchanged, and so a changed mapping of tags relabels every day of the mart,
but an unchanged one does not.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Set
from dataclasses import dataclass

from convo.models.registry import Model


class Change(enum.Enum):
    """How an input (a source, or a model already evaluated) changed; absent from `changed` if not at all."""

    ROWS = "some rows"  # a known set of rows changed: their partition values can be read from them
    WHOLE = "rewritten whole"  # written from nothing: every row is new


@dataclass(frozen=True)
class Whole:
    reason: str
    from_empty: bool = False  # the table holds no row yet: every row it gets is new


@dataclass(frozen=True)
class PartitionSource:
    """A changed input whose changed rows give partition values, read from `columns`."""

    input: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class ByPartition:
    sources: tuple[PartitionSource, ...]


@dataclass(frozen=True)
class Unchanged:
    pass


Recompute = Whole | ByPartition | Unchanged


@dataclass(frozen=True)
class Step:
    model: Model
    recompute: Recompute

    @property
    def change(self) -> Change | None:
        """What this step is assumed to change, for the steps after it (`plan`)."""
        match self.recompute:
            case Unchanged():
                return None
            case Whole(from_empty=True):
                return Change.WHOLE  # inserted into an empty table: no diff to read partitions from
            case _:
                return Change.ROWS  # a merge: its delta holds exactly the rows that changed


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]  # one per model, in dependency order


def summary(p: Plan) -> str:
    """E.g. `3 by partition, 1 whole (dim_date: never written), 9 unchanged`."""
    whole = [f"{s.model.name}: {s.recompute.reason}" for s in p.steps if isinstance(s.recompute, Whole)]
    by_partition = sum(isinstance(s.recompute, ByPartition) for s in p.steps)
    unchanged = sum(isinstance(s.recompute, Unchanged) for s in p.steps)
    shown_whole = f"{len(whole)} whole ({'; '.join(whole)})" if whole else "0 whole"
    return f"{by_partition} by partition, {shown_whole}, {unchanged} unchanged"


def decide(m: Model, changed: Mapping[str, Change], *, full_refresh: bool, never_written: Set[str]) -> Recompute:
    """What to recompute of model `m`, given how each of its inputs changed."""
    empty = m.materialized == "table" and m.name in never_written
    if full_refresh:
        return Whole("full refresh", from_empty=empty)
    if empty:
        return Whole("never written", from_empty=True)
    inputs = [i for i in m.inputs if i in changed]
    if not inputs:
        return Unchanged()
    if m.partition is None:
        return Whole(f"{', '.join(inputs)} changed and it has no partition column")
    rewritten = [i for i in inputs if changed[i] is Change.WHOLE]
    if rewritten:
        return Whole(f"{', '.join(rewritten)} rewritten whole")
    unscoped = [i for i in inputs if m.scope.get(i) is None]
    if unscoped:
        return Whole(f"{', '.join(unscoped)} changed and is read whole (no scope)")
    return ByPartition(tuple(PartitionSource(i, tuple(m.scope[i])) for i in inputs))


def plan(
    models: Mapping[str, Model],
    changed: Mapping[str, Change],
    *,
    full_refresh: bool,
    never_written: Set[str],
) -> Plan:
    """One step per model, in the order of `models` (dependency order, as `registry.models()` gives).

    `changed` holds the changes known before the build (its sources'); each model is assumed to
    change as its step says.
    """
    known = dict(changed)
    steps = []
    for m in models.values():
        step = Step(m, decide(m, known, full_refresh=full_refresh, never_written=never_written))
        if step.change is not None:
            known[m.name] = step.change
        steps.append(step)
    return Plan(tuple(steps))
