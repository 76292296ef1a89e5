"""The model registry: every table the runner builds, its inputs, and its documentation.

A model is a pure function from Ibis tables to an Ibis table; its parameter names are the
names of its inputs (other models, or sources the runner provides). How it is rebuilt
incrementally is declared beside it:

- `materialized`: "table" (stored, merged incrementally) or "view" (a projection computed when
  read: nothing to store or merge; no model may read a view).
- `partition`: an output column such that a partition's rows depend only on input rows
  linked to it; only partitions touched by changed input rows are recomputed.
- `scope`: for each input, the input columns that link a changed input row to the partitions
  it touches. An input in no scope entry, or scoped to None, forces a full recompute when it
  changes. `partition=None` means the model is always recomputed whole (small tables).

Descriptions, grain, keys and relationships come from the YAML file of the model's layer.
"""

from __future__ import annotations

import functools
import graphlib
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

LAYERS = ("staging", "intermediate", "facts", "dimensions", "marts")
# Inputs that are not models: the runner supplies them.
SOURCES = ("accepted_events", "seed_tag_contact_reasons")


@dataclass(frozen=True)
class Column:
    name: str
    description: str
    references: str | None = None  # "table.column" of a foreign key
    load_time: bool = False  # set by the runner at load time, not by the model


@dataclass(frozen=True)
class TableDoc:
    name: str
    layer: str
    description: str
    grain: str
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    built_by: str  # "model" or "ingestion"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def foreign_keys(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.references)


@dataclass(frozen=True)
class Model:
    name: str
    fn: Callable
    inputs: tuple[str, ...]
    partition: str | None
    scope: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)
    materialized: str = "table"

    @property
    def layer(self) -> str:
        return self.fn.__module__.rsplit(".", 1)[-1]

    @property
    def doc(self) -> TableDoc:
        return table_docs()[self.name]


_MODELS: dict[str, Model] = {}


def model(
    *,
    partition: str | None = None,
    scope: Mapping[str, tuple[str, ...] | None] | None = None,
    materialized: str = "table",
):
    """Register a model function; its name is the table name."""

    def register(fn: Callable) -> Callable:
        inputs = tuple(inspect.signature(fn).parameters)
        unknown = set(scope or {}) - set(inputs)
        if unknown:
            raise ValueError(f"model {fn.__name__}: scope names unknown inputs {sorted(unknown)}")
        if materialized not in ("table", "view"):
            raise ValueError(f"model {fn.__name__}: materialized must be 'table' or 'view'")
        _MODELS[fn.__name__] = Model(fn.__name__, fn, inputs, partition, dict(scope or {}), materialized)
        return fn

    return register


def models() -> dict[str, Model]:
    """All models, in dependency order."""
    for layer in LAYERS:
        importlib.import_module(f"convo.models.{layer}")
    graph = {m.name: {i for i in m.inputs if i in _MODELS} for m in _MODELS.values()}
    for m in _MODELS.values():
        missing = [i for i in m.inputs if i not in _MODELS and i not in SOURCES]
        if missing:
            raise ValueError(f"model {m.name} reads {missing}, which is neither a model nor a source")
        views = [i for i in m.inputs if i in _MODELS and _MODELS[i].materialized == "view"]
        if views:
            raise ValueError(f"model {m.name} reads the view models {views}; only stored tables can be inputs")
    return {name: _MODELS[name] for name in graphlib.TopologicalSorter(graph).static_order()}


@functools.cache
def table_docs() -> dict[str, TableDoc]:
    """Every documented table (models and ingestion tables), from the layers' YAML files."""
    docs: dict[str, TableDoc] = {}
    for layer in LAYERS:
        path = Path(__file__).with_name(f"{layer}.yml")
        for entry in yaml.safe_load(path.read_text())["tables"]:
            columns = tuple(
                Column(c["name"], " ".join(c["description"].split()), c.get("references"), c.get("load_time", False))
                for c in entry["columns"]
            )
            docs[entry["name"]] = TableDoc(
                name=entry["name"],
                layer=layer,
                description=" ".join(entry["description"].split()),
                grain=entry["grain"],
                primary_key=tuple(entry["primary_key"]),
                columns=columns,
                built_by=entry.get("built_by", "model"),
            )
    return docs
