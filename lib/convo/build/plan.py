"""The plan: which models a build recomputes, in dependency order. Pure: no warehouse, no I/O.

This holds the full plan only (every model recomputed whole), which full builds, such as the
Spark backend's, walk; the runner's incremental rules (by partition, unchanged) extend it.
"""

from __future__ import annotations

import enum
import graphlib
from collections.abc import Mapping
from dataclasses import dataclass

from convo.models.registry import Model


class Change(enum.Enum):
    """How an input (a source, or a model already evaluated) changed; absent from `changed` if not at all."""

    ROWS = "some rows"
    WHOLE = "rewritten whole"


@dataclass(frozen=True)
class Whole:
    reason: str
    from_empty: bool = False  # the table holds no row yet: every row it gets is new


@dataclass(frozen=True)
class Step:
    model: Model
    recompute: Whole


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]


def plan(
    models: Mapping[str, Model],
    changed: Mapping[str, Change],
    *,
    full_refresh: bool,
    never_written: frozenset[str] | set[str],
) -> Plan:
    """One step per model, each after the models it reads."""
    if not full_refresh:
        raise ValueError("only full plans are made here: pass full_refresh=True")
    graph = {name: [i for i in m.inputs if i in models] for name, m in models.items()}
    order = graphlib.TopologicalSorter(graph).static_order()
    return Plan(
        tuple(
            Step(
                models[name],
                Whole("full refresh", from_empty=models[name].materialized == "table" and name in never_written),
            )
            for name in order
        )
    )
