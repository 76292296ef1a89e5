"""The versioned store (`engine/store.py`) on a real DuckDB file, without the runner.

Table `t` (key `k`, partition `part`, value `v`) stands for any model's table.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from convo.engine.store import FROM, TO, Store, visible
from convo.engine.warehouse import STORE, WORK, Warehouse

COLUMNS = "k BIGINT, part VARCHAR, v BIGINT"


def _open(folder: Path) -> Store:
    return Store(Warehouse(folder / "w.duckdb", threads=1, memory_limit="500MB"))


@pytest.fixture
def store(tmp_path):
    s = _open(tmp_path)
    yield s
    s.wh.close()


def _scratch(store: Store, name: str, rows: list[tuple]) -> str:
    store.wh.execute(f'CREATE OR REPLACE TEMP TABLE {WORK}."{name}" ({COLUMNS})')
    if rows:
        store.wh.execute_many(f'INSERT INTO {WORK}."{name}" VALUES (?, ?, ?)', [list(r) for r in rows])
    return name


def _touched(store: Store, parts: list[str]) -> str:
    """The partition filter of a merge over `parts`, as the build writes it."""
    store.wh.execute(f"CREATE OR REPLACE TEMP TABLE {WORK}.touched (value VARCHAR)")
    if parts:
        store.wh.execute_many(f"INSERT INTO {WORK}.touched VALUES (?)", [[p] for p in parts])
    return f"part IN (SELECT value FROM {WORK}.touched)"


def _rows(store: Store, where: str, params: list | None = None) -> Counter:
    return Counter(store.wh.execute(f'SELECT k, part, v FROM {STORE}."t" WHERE {where}', params))


def _version(store: Store, version: int) -> Counter:
    return _rows(store, visible(version))


def _live(store: Store) -> Counter:
    return _rows(store, f"{TO} IS NULL")


def _merge(store: Store, rows: list[tuple], parts: list[str] | None, version: int, *, snapshot: bool = False):
    """Merge `rows` over partitions `parts` (None: the whole table), as version `version`."""
    new = _scratch(store, f"new_{version}", rows)
    old_filter = None if parts is None else _touched(store, parts)
    old = None
    if snapshot:  # the build may take the snapshot earlier, and hand it over
        old = f"old_{version}"
        store.snapshot("t", old, old_filter)
    return store.merge("t", new, key=("k",), old_filter=old_filter, version=version, old=old)


# -- append, insert ----------------------------------------------------------------------------
def test_append_adds_rows_of_a_version_and_keeps_the_earlier_ones(store):
    assert store.append("t", _scratch(store, "b1", [(1, "a", 10), (1, "a", 10)]), 1) == 2  # duplicates kept
    assert store.append("t", _scratch(store, "b2", [(2, None, None)]), 2) == 1
    assert _version(store, 1) == Counter({(1, "a", 10): 2})
    assert _version(store, 2) == Counter({(1, "a", 10): 2, (2, None, None): 1})
    assert _rows(store, f"{FROM} = ?", [2]) == Counter({(2, None, None): 1})


def test_append_refuses_other_columns_naming_the_table(store):
    store.append("t", _scratch(store, "b1", [(1, "a", 10)]), 1)
    store.wh.execute(f"CREATE TEMP TABLE {WORK}.other AS SELECT 1::BIGINT AS k, 'a' AS part")
    with pytest.raises(RuntimeError, match="the columns of t changed"):
        store.append("t", "other", 2)


def test_insert_fills_an_empty_table_as_one_delta_of_everything(store):
    delta = store.insert("t", "SELECT * FROM (VALUES (1::BIGINT, 'a', 10::BIGINT), (2, 'b', NULL)) AS r(k, part, v)", 1)
    assert (delta.inserted, delta.retired, delta.everything, delta.changed) == (2, 0, True, True)
    assert _live(store) == Counter({(1, "a", 10): 1, (2, "b", None): 1})


# -- merge: hand-made cases --------------------------------------------------------------------
def test_merge_into_an_empty_table_inserts(store):
    delta = _merge(store, [(1, "a", 10), (2, "b", 20)], None, 1)
    assert (delta.inserted, delta.retired, delta.everything) == (2, 0, True)


def test_merge_rewrites_only_what_changed_in_the_touched_partitions(store):
    _merge(store, [(1, "a", 10), (2, "a", 20), (3, "b", 30)], None, 1)
    # Partition a: 1 unchanged, 2 changed, 4 new. Partition b untouched.
    delta = _merge(store, [(1, "a", 10), (2, "a", 21), (4, "a", 40)], ["a"], 2)
    assert (delta.inserted, delta.retired, delta.everything) == (2, 1, False)
    assert _live(store) == Counter({(1, "a", 10): 1, (2, "a", 21): 1, (3, "b", 30): 1, (4, "a", 40): 1})
    assert _version(store, 1) == Counter({(1, "a", 10): 1, (2, "a", 20): 1, (3, "b", 30): 1})
    # The unchanged rows are shared by both versions, not copied.
    assert store.wh.execute(f'SELECT k, {FROM}, {TO} FROM {STORE}."t" WHERE k IN (1, 3) ORDER BY k') == [
        (1, 1, None),
        (3, 1, None),
    ]
    # The delta's rows: the changed ones, +1 inserted, -1 retired (downstream partitions come from them).
    changed = store.wh.execute(f'SELECT k, v, _change FROM {WORK}."{delta.table}" ORDER BY k, v')
    assert changed == [(2, 20, -1), (2, 21, 1), (4, 40, 1)]


def test_merge_retires_the_rows_that_vanished_from_a_touched_partition(store):
    _merge(store, [(1, "a", 10), (2, "a", 20), (3, "b", 30)], None, 1)
    delta = _merge(store, [(1, "a", 10)], ["a", "c"], 2, snapshot=True)
    assert (delta.inserted, delta.retired) == (0, 1)
    assert _live(store) == Counter({(1, "a", 10): 1, (3, "b", 30): 1})
    assert _version(store, 1) == Counter({(1, "a", 10): 1, (2, "a", 20): 1, (3, "b", 30): 1})


def test_merge_of_the_same_rows_changes_nothing(store):
    _merge(store, [(1, "a", 10), (2, None, None)], None, 1)
    delta = _merge(store, [(1, "a", 10), (2, None, None)], None, 2)
    assert (delta.inserted, delta.retired, delta.changed) == (0, 0, False)
    assert store.wh.scalar(f'SELECT count(*) FROM {STORE}."t" WHERE {FROM} = 2') == 0


def test_discarding_a_version_restores_the_one_before(store):
    _merge(store, [(1, "a", 10), (2, "b", 20)], None, 1)
    _merge(store, [(1, "a", 11)], ["a"], 2)
    store.discard_after(1)
    assert _live(store) == _version(store, 1) == Counter({(1, "a", 10): 1, (2, "b", 20): 1})
    assert store.wh.scalar(f'SELECT count(*) FROM {STORE}."t" WHERE {FROM} = 2') == 0


def test_expiring_drops_only_rows_no_kept_version_sees(store):
    for version, v in ((1, 10), (2, 11), (3, 12)):
        _merge(store, [(1, "a", v), (2, "b", 20)], ["a", "b"] if version > 1 else None, version)
        store.publish(version)
    store.expire(None)  # nothing expired (engine/state.py decides which versions expire)
    assert len(list(_rows(store, "true").elements())) == 4
    store.expire(2)  # versions before 2 expired: 2 is the oldest kept
    assert Counter(v for _, _, v in _rows(store, "true").elements()) == Counter({11: 1, 12: 1, 20: 1})
    assert _version(store, 2) == Counter({(1, "a", 11): 1, (2, "b", 20): 1})


# -- merge: the property -----------------------------------------------------------------------
PARTS = ["a", "b", "c"]
keys = st.one_of(st.none(), st.integers(1, 6))
values = st.one_of(st.none(), st.integers(0, 2))


@st.composite
def merges(draw):
    """Stored rows, partitions to recompute, and their recomputed rows.

    The stored rows have one row per key (NULL is a key too), as every stored version has: a
    build whose rows repeat a primary key fails its audit and is discarded. Their values, and the
    recomputed rows in every way (whole rows, keys, NULLs), repeat freely.
    """
    stored = draw(st.dictionaries(keys, st.tuples(st.sampled_from([*PARTS, None]), values), max_size=8))
    old = [(k, part, v) for k, (part, v) in stored.items()]
    touched = draw(st.lists(st.sampled_from(PARTS), unique=True))
    new = draw(st.lists(st.tuples(keys, st.sampled_from(touched), values), max_size=10)) if touched else []
    return old, touched, new, draw(st.booleans())


@pytest.fixture(scope="module")
def one_store(tmp_path_factory):
    """One warehouse file for every example: opening a file per example would take most of the time."""
    s = _open(tmp_path_factory.mktemp("store"))
    yield s
    s.wh.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=merges())
def test_merge_leaves_the_new_rows_of_the_touched_partitions_and_the_untouched_old_rows(one_store, case):
    old, touched, new, snapshot = case
    store = one_store
    store.wh.execute(f'DROP TABLE IF EXISTS {STORE}."t"')
    store.append("t", _scratch(store, "old", old), 1)  # the table exists: only a new one is built whole
    delta = _merge(store, new, touched, 2, snapshot=snapshot)
    kept = Counter(r for r in old if r[1] not in touched)
    replaced = Counter(r for r in old if r[1] in touched)
    assert _live(store) == _version(store, 2) == Counter(new) + kept
    assert _version(store, 1) == Counter(old)
    assert delta.inserted == (Counter(new) - replaced).total()
    assert delta.retired == (replaced - Counter(new)).total()
