"""Every registered model has unit tests here, and returns the columns its YAML documents."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from model_io import schema_of

from convo.models.registry import models, table_docs

HERE = Path(__file__).parent
# Staging functions that ingestion calls row by row, outside the model graph: tested like models.
INGESTION_FUNCTIONS = {
    "staging": ("parse_raw_events", "accepted_events", "deduplicate_events", "repeated_events", "first_occurrences")
}


def called_names(path: Path) -> set[str]:
    """Names of the functions a module calls (`f(...)` or `module.f(...)`), anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            names.add(f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None)
    return names - {None}


def required_tests() -> dict[str, set[str]]:
    """Per layer, the functions its test module must call: its models, and the ingestion functions."""
    required: dict[str, set[str]] = {}
    for m in models().values():
        required.setdefault(m.layer, set()).add(m.fn.__name__)
    for layer, functions in INGESTION_FUNCTIONS.items():
        required.setdefault(layer, set()).update(functions)
    return required


def test_every_model_is_called_by_the_unit_tests_of_its_layer():
    missing = {}
    for layer, functions in required_tests().items():
        path = HERE / f"test_{layer}.py"
        untested = functions - (called_names(path) if path.exists() else set())
        if untested:
            missing[path.name] = sorted(untested)
    assert not missing, f"models without a unit test (call each in its layer's test module): {missing}"


def test_the_check_sees_a_model_without_a_test(tmp_path):
    module = tmp_path / "test_x.py"
    module.write_text("from m import a, b\n\ndef test_a():\n    assert rows(a(t)) == []\n\nB = m.c(t)\n")
    assert called_names(module) == {"rows", "a", "c"}  # b is imported, never called


@pytest.mark.parametrize("name", list(models()))
def test_output_columns_are_the_documented_ones(name):
    documented = [c.name for c in table_docs()[name].columns if not c.load_time]
    assert list(schema_of(name).names) == documented


@pytest.mark.parametrize("name", list(models()))
def test_partition_key_and_scope_name_real_columns(name):
    """What the runner relies on to rebuild a model incrementally names columns that exist."""
    m, columns = models()[name], set(schema_of(name).names)
    assert set(table_docs()[name].primary_key) <= columns
    assert m.partition is None or m.partition in columns
    for source, scope in m.scope.items():
        assert scope is None or set(scope) <= set(schema_of(source).names), source
