"""The planner (`build/plan.py`): each rule on hand-made models, the real models' plans, and
properties over random model graphs and changes. Pure: no warehouse, milliseconds."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings

from convo.build.plan import ByPartition, Change, PartitionSource, Step, Unchanged, Whole, decide, plan
from convo.models.registry import Model, models

NOTHING_STORED = frozenset()


def _model(name, inputs, partition="p", scope=None, materialized="table") -> Model:
    return Model(name, lambda **_: None, tuple(inputs), partition, dict(scope or {}), materialized)


def _graph(*ms: Model) -> dict[str, Model]:
    return {m.name: m for m in ms}


def _decide(m, changed, *, full_refresh=False, never_written=NOTHING_STORED):
    return decide(m, changed, full_refresh=full_refresh, never_written=never_written)


# -- each rule ----------------------------------------------------------------------------------
SCOPED = _model("scoped", ["events", "users"], scope={"events": ("conversation_id",), "users": ("user_id", "owner")})


def test_full_refresh_recomputes_whole_even_with_nothing_changed():
    assert _decide(SCOPED, {}, full_refresh=True) == Whole("full refresh")
    # Written from nothing when the table is empty: its dependents cannot read a diff from it.
    assert _decide(SCOPED, {}, full_refresh=True, never_written={"scoped"}) == Whole("full refresh", from_empty=True)


def test_a_table_never_written_is_recomputed_whole_even_with_nothing_changed():
    assert _decide(SCOPED, {}, never_written={"scoped"}) == Whole("never written", from_empty=True)
    assert _decide(SCOPED, {"events": Change.ROWS}, never_written={"scoped"}) == Whole("never written", from_empty=True)


def test_a_view_is_never_written_so_it_follows_its_inputs():
    view = _model("v", ["events"], scope={"events": ("conversation_id",)}, materialized="view")
    assert _decide(view, {}, never_written={"v"}) == Unchanged()
    assert _decide(view, {"events": Change.ROWS}, never_written={"v"}) == ByPartition(
        (PartitionSource("events", ("conversation_id",)),)
    )


def test_no_changed_input_leaves_the_model_unchanged():
    assert _decide(SCOPED, {}) == Unchanged()
    assert _decide(SCOPED, {"somewhere_else": Change.WHOLE}) == Unchanged()


def test_a_model_without_partition_column_is_recomputed_whole_when_an_input_changed():
    small = _model("small", ["events"], partition=None, scope={"events": ("conversation_id",)})
    assert _decide(small, {"events": Change.ROWS}) == Whole("events changed and it has no partition column")
    assert _decide(_model("calendar", [], partition=None), {"events": Change.ROWS}) == Unchanged()


def test_an_input_rewritten_whole_makes_the_model_whole():
    assert _decide(SCOPED, {"events": Change.WHOLE, "users": Change.ROWS}) == Whole("events rewritten whole")


def test_a_changed_input_read_unscoped_makes_the_model_whole():
    absent = _model("m", ["events", "mapping"], scope={"events": ("conversation_id",)})
    declared_none = _model("m", ["events", "mapping"], scope={"events": ("conversation_id",), "mapping": None})
    for m in (absent, declared_none):
        assert _decide(m, {"events": Change.ROWS, "mapping": Change.ROWS}) == Whole(
            "mapping changed and is read whole (no scope)"
        )
        # Unchanged, the unscoped input does not matter.
        assert _decide(m, {"events": Change.ROWS}) == ByPartition((PartitionSource("events", ("conversation_id",)),))


def test_scoped_changed_inputs_give_partitions_through_their_scope_columns_only():
    assert _decide(SCOPED, {"users": Change.ROWS}) == ByPartition((PartitionSource("users", ("user_id", "owner")),))
    assert _decide(SCOPED, {"users": Change.ROWS, "events": Change.ROWS}) == ByPartition(
        (PartitionSource("events", ("conversation_id",)), PartitionSource("users", ("user_id", "owner")))
    )


# -- propagation through a plan ----------------------------------------------------------------
def test_a_model_written_from_nothing_makes_its_readers_whole_a_merged_whole_one_does_not():
    graph = _graph(
        _model("a", ["src"], scope={"src": ("k",)}),
        _model("tags", ["a"], partition=None),  # merged whole: its delta still holds exactly the changed rows
        _model("b", ["a"], scope={"a": ("p",)}),
        _model("c", ["tags"], scope={"tags": ("p",)}),
    )
    steps = {
        s.model.name: s.recompute
        for s in plan(graph, {"src": Change.ROWS}, full_refresh=False, never_written={"a"}).steps
    }
    assert steps == {
        "a": Whole("never written", from_empty=True),
        "tags": Whole("a changed and it has no partition column"),
        "b": Whole("a rewritten whole"),
        "c": ByPartition((PartitionSource("tags", ("p",)),)),
    }


def test_the_real_models_for_a_batch_of_new_events():
    p = plan(models(), {"accepted_events": Change.ROWS}, full_refresh=False, never_written=NOTHING_STORED)
    steps = {s.model.name: s.recompute for s in p.steps}
    assert steps["stg_conversation_events"] == ByPartition((PartitionSource("accepted_events", ("conversation_id",)),))
    assert steps["dim_date"] == Unchanged()
    assert steps["fact_conversation_events"] == ByPartition(
        (PartitionSource("stg_conversation_events", ("conversation_id",)),)
    )
    assert steps["dim_user"] == ByPartition(
        (
            PartitionSource("stg_conversation_events", ("user_id",)),
            PartitionSource("fact_conversations", ("user_id",)),
        )
    )
    assert steps["dim_tag"] == Whole("fact_conversation_tags changed and it has no partition column")
    # The plan assumes the tags' dimension changes: a relabelled tag changes every day of the mart.
    assert steps["mart_contact_reasons_daily"] == Whole("dim_tag changed and is read whole (no scope)")


def test_a_build_narrows_the_plan_when_a_recomputed_model_changed_nothing():
    """The runner decides each step on what its inputs did change: an unchanged dim_tag leaves
    the mart to be recomputed by the days of its changed rows."""
    mart = models()["mart_contact_reasons_daily"]
    changed = {"int_conversation_tags": Change.ROWS, "fact_conversation_lifecycle": Change.ROWS}
    assert _decide(mart, changed) == ByPartition(
        (
            PartitionSource("int_conversation_tags", ("opened_date_key", "first_assigned_date_key", "closed_date_key")),
            PartitionSource("fact_conversation_lifecycle", ("opened_date_key",)),
        )
    )


def test_the_spark_backends_full_build_is_every_model_whole_in_dependency_order():
    p = plan(models(), {}, full_refresh=True, never_written=frozenset())
    assert [s.model.name for s in p.steps] == list(models())
    assert all(s.recompute == Whole("full refresh") for s in p.steps)
    _assert_dependency_order(p.steps)


def test_nothing_new_plans_nothing():
    p = plan(models(), {}, full_refresh=False, never_written=NOTHING_STORED)
    assert all(s.recompute == Unchanged() for s in p.steps)


# -- properties --------------------------------------------------------------------------------
SOURCES = ("src_a", "src_b")
COLUMNS = ("c1", "c2")


@st.composite
def graphs(draw):
    """Random models in dependency order: each reads sources and earlier tables, scoped or not."""
    graph: dict[str, Model] = {}
    for n in range(draw(st.integers(1, 8))):
        tables = [name for name, m in graph.items() if m.materialized == "table"]
        inputs = draw(st.lists(st.sampled_from([*SOURCES, *tables]), unique=True, max_size=3))
        scope = {}
        for i in inputs:
            kind = draw(st.sampled_from(["columns", "none", "absent"]))
            if kind == "columns":
                scope[i] = tuple(draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=2, unique=True)))
            elif kind == "none":
                scope[i] = None
        partition = draw(st.sampled_from(["p", None]))
        materialized = draw(st.sampled_from(["table", "table", "view"]))
        graph[f"m{n}"] = _model(f"m{n}", inputs, partition, scope, materialized)
    return graph


@st.composite
def situations(draw):
    graph = draw(graphs())
    changed = draw(st.dictionaries(st.sampled_from(SOURCES), st.sampled_from(list(Change))))
    never_written = frozenset(draw(st.lists(st.sampled_from(list(graph)), unique=True)))
    return graph, changed, never_written, draw(st.booleans())


def _assert_dependency_order(steps: tuple[Step, ...]) -> None:
    planned, seen = {s.model.name for s in steps}, set()
    for s in steps:  # every model input (not a source) comes first
        assert all(i in seen for i in s.model.inputs if i in planned), s.model.name
        seen.add(s.model.name)


@settings(max_examples=100, deadline=None)
@given(situations())
def test_plan_properties(situation):
    graph, changed, never_written, full_refresh = situation
    p = plan(graph, changed, full_refresh=full_refresh, never_written=never_written)
    assert [s.model.name for s in p.steps] == list(graph)
    _assert_dependency_order(p.steps)
    steps = {s.model.name: s for s in p.steps}
    if full_refresh:
        assert all(isinstance(s.recompute, Whole) for s in p.steps)
        return

    def change_of(name):
        if name in SOURCES:
            return changed.get(name)
        return steps[name].change

    for s in p.steps:
        m, r = s.model, s.recompute
        changed_inputs = [i for i in m.inputs if change_of(i) is not None]
        stored_empty = m.materialized == "table" and m.name in never_written
        # Downstream of a change, or never written, is recomputed; nothing else is.
        assert isinstance(r, Unchanged) == (not changed_inputs and not stored_empty), m.name
        if stored_empty:
            assert r == Whole("never written", from_empty=True)
            continue
        # Whole propagates to every model reading a changed input unscoped, or one rewritten whole.
        if any(m.scope.get(i) is None or change_of(i) is Change.WHOLE for i in changed_inputs) or (
            changed_inputs and m.partition is None
        ):
            assert isinstance(r, Whole), m.name
        elif changed_inputs:
            assert r == ByPartition(tuple(PartitionSource(i, m.scope[i]) for i in changed_inputs)), m.name


@settings(max_examples=100, deadline=None)
@given(situations(), st.data())
def test_deciding_on_what_did_change_only_narrows_the_plan(situation, data):
    """A build re-decides each step on its inputs' real changes, a subset of what the plan assumed:
    a step the plan left unchanged stays unchanged, and partitions come from fewer inputs, never more."""
    graph, changed, never_written, full_refresh = situation
    p = plan(graph, changed, full_refresh=full_refresh, never_written=never_written)
    actual = {k: v for k, v in changed.items() if data.draw(st.booleans())}
    for planned in p.steps:
        m = planned.model
        decided = Step(m, decide(m, actual, full_refresh=full_refresh, never_written=never_written))
        if isinstance(planned.recompute, Unchanged):
            assert isinstance(decided.recompute, Unchanged), m.name
        if isinstance(planned.recompute, ByPartition) and isinstance(decided.recompute, ByPartition):
            assert set(decided.recompute.sources) <= set(planned.recompute.sources), m.name
        if isinstance(planned.recompute, ByPartition):
            assert not isinstance(decided.recompute, Whole), m.name
        # What the recomputed model really changed is at most what the plan assumed (dropped at random).
        if decided.change is not None and data.draw(st.booleans()):
            actual[m.name] = decided.change
