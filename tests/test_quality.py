"""Data-quality checks: every expectation is seen failing, with its severity, where its rule is broken.

One small warehouse is built for the module: the seed, then eight one-conversation files (so that
the load tables have a row per case). Each case copies its file, breaks one rule by a versioned
edit of the stored rows (older versions are left as they were), and runs the audit on the broken
table: exactly that check (and the checks it necessarily drags along, listed in `also`) fails,
with the severity the case expects. Then two real builds carry every error case, and every warn
case, in their unpublished version: the first publishes nothing, the second publishes.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
from great_expectations.expectations.expectation import Expectation

from conftest import ROOT, make_env, query, write_events
from convo import cli
from convo.audit import checks as audit
from convo.audit import gx_configurations, suites
from convo.audit import worker as audit_worker
from convo.audit.validate import validate
from convo.build import changes, runner
from convo.engine.warehouse import CANDIDATE, PUBLISHED, STORE
from convo.models.registry import table_docs

ERROR, WARN = "error", "warn"
BAND = {"volume_max_drop_pct": 0, "volume_max_growth_pct": 100}
FIRST_LATE, LATE_FILES = 41, 8  # conversations 10000000000041 .. 48, one per extra file

META = "convo_meta"  # the run history, read here as a user of the warehouse would


def conversation(n: int) -> int:
    return 10000000000000 + n


def late_file(tmp: Path, i: int) -> str:
    """One conversation from a new user, closed by agent 1001, and one row that must be rejected."""
    c, user, hour = str(conversation(FIRST_LATE + i)), str(2000001 + i), 8 + i
    return str(
        write_events(
            tmp / f"late_{i}.csv",
            [
                (f"2024-04-15 {hour}:00:00", c, user, "", "customer_message_received", "<m>"),
                (f"2024-04-15 {hour}:05:00", c, user, "1001", "agent_assigned", "1001"),
                (f"2024-04-15 {hour}:10:00", c, user, "1001", "message_sent_to_customer", "<m>"),
                (f"2024-04-15 {hour}:20:00", c, user, "1001", "status_changed_to", "Closed"),
                (f"2024-04-15 {hour}:30:00", c, "not-a-user", "", "customer_message_received", "<m>"),
            ],
        )
    )


# -- breaking a rule ------------------------------------------------------------------------------
def _literal(value) -> str:
    quoted = isinstance(value, str | uuid.UUID)  # event ids are UUIDs
    return "'" + str(value).replace("'", "''") + "'" if quoted else str(value)


class Tamper:
    """Breaks what schema `schema` (at version `version`) shows of a table.

    A stored table is edited the way a build writes it: the replaced rows get `_valid_to =
    version`, their replacements `_valid_from = version`, so other versions are left as they were.
    A view model has no rows of its own: its view in `schema` is wrapped in one that alters its
    output, as a defect in the model would.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, version: int, schema: str):
        self.con, self.version, self.schema = con, version, schema

    def _stored(self, table: str) -> bool:
        return bool(
            self.con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [STORE, table],
            ).fetchone()[0]
        )

    def _assert_one(self, relation: str, where: str) -> None:
        n = self.con.execute(f"SELECT count(*) FROM {relation} WHERE {where}").fetchone()[0]
        assert n == 1, f"{relation} WHERE {where}: {n} rows, expected exactly one"

    @staticmethod
    def _select(values: dict, only_where: str | None = None) -> str:
        """SELECT * with `values` replacing columns (only in rows matching `only_where`, if given)."""
        if not values:
            return "SELECT *"
        changed = {c: f'CASE WHEN {only_where} THEN {v} ELSE "{c}" END' if only_where else v for c, v in values.items()}
        return "SELECT * REPLACE (" + ", ".join(f'{v} AS "{c}"' for c, v in changed.items()) + ")"

    def _wrap_view(self, table: str, query_of_original: str) -> None:
        original = f"{table}__before_tamper_{self.con.execute('SELECT nextval(?)', ['tamper_ids']).fetchone()[0]}"
        self.con.execute(f'ALTER VIEW {self.schema}."{table}" RENAME TO "{original}"')
        self.con.execute(
            f'CREATE VIEW {self.schema}."{table}" AS '
            + query_of_original.format(original=f'{self.schema}."{original}"')
        )

    def alter(self, table: str, where: str, **values: str) -> None:
        """Replace one row by a copy with `values` (SQL expressions over the old row)."""
        if not self._stored(table):
            self._assert_one(f'{self.schema}."{table}"', where)
            return self._wrap_view(table, f"{self._select(values, where)} FROM {{original}}")
        stored, live = f'{STORE}."{table}"', f"_valid_to IS NULL AND ({where})"
        self._assert_one(stored, live)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE replaced AS SELECT * FROM {stored} WHERE {live}")
        self.con.execute(f"UPDATE {stored} SET _valid_to = {self.version} WHERE {live}")
        new_version = {**values, "_valid_from": str(self.version)}
        self.con.execute(f"INSERT INTO {stored} {self._select(new_version)} FROM temp.replaced")

    def add(self, table: str, where: str, **values: str) -> None:
        """Add a copy of one row, with `values` changed."""
        if not self._stored(table):
            self._assert_one(f'{self.schema}."{table}"', where)
            copy = f"{self._select(values)} FROM {{original}} WHERE {where}"
            return self._wrap_view(table, f"SELECT * FROM {{original}} UNION ALL {copy}")
        stored, live = f'{STORE}."{table}"', f"_valid_to IS NULL AND ({where})"
        self._assert_one(stored, live)
        new_version = {**values, "_valid_from": str(self.version)}
        self.con.execute(f"INSERT INTO {stored} {self._select(new_version)} FROM {stored} WHERE {live}")

    def baseline(self, table: str, factor: int) -> None:
        """Make the previous successful build claim `factor` times the rows it left in `table`."""
        self.con.execute(
            f"""UPDATE {META}.run_tables SET rows = rows * {factor} WHERE table_name = ? AND run_id =
            (SELECT max(run_id) FROM {META}.run_tables WHERE table_name = ? AND run_id < ?)""",
            [table, table, self.version],
        )

    def missing_value(self, table: str, column: str) -> str:
        """A value no parent table holds, of the column's type."""
        kind = self.con.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_schema IN (?, ?) AND table_name = ?"
            " AND column_name = ?",
            [STORE, self.schema, table, column],
        ).fetchone()[0]
        return "'no such key'" if kind == "VARCHAR" else "-1"


def _key_where(table: str, key: tuple) -> str:
    return " AND ".join(f'"{c}" = {_literal(v)}' for c, v in zip(table_docs()[table].primary_key, key))


# -- the cases ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Case:
    table: str
    check: str
    severity: str
    tamper: Callable[[Tamper], None] | None
    also: tuple[str, ...] = ()  # checks of the same table the defect cannot help breaking too
    shows: str | None = None  # a value the failure must name among its offending values
    checks: dict = dataclasses.field(default_factory=dict)  # extra [checks] settings

    @property
    def id(self) -> str:
        return f"{self.table}: {self.check}"


def _duplicate(table: str, key: tuple) -> Callable[[Tamper], None]:
    return lambda t: t.add(table, _key_where(table, key))


def _null(table: str, key: tuple, column: str) -> Callable[[Tamper], None]:
    return lambda t: t.alter(table, _key_where(table, key), **{column: "NULL"})


def _orphan(table: str, key: tuple, column: str) -> Callable[[Tamper], None]:
    return lambda t: t.alter(table, _key_where(table, key), **{column: t.missing_value(table, column)})


# Checks of the same table that a broken key necessarily breaks too.
KEY_ALSO = {
    ("fact_conversation_lifecycle", "not null"): ("id is a staged conversation",),
    ("dim_date", "unique"): ("date is unique",),
    ("ingested_files", "not null"): (
        "rows_staged = the file's rows in stg_conversation_events",
        "rows_rejected = the file's rows in rejected_conversation_events",
    ),
    ("stg_conversation_events", "user_id"): ("each conversation has one user",),
}


def key_cases(keys: dict[str, list[tuple]], stored: set[str]) -> list[Case]:
    """Cases for the checks generated from the model docs, on the rows with the highest keys (the
    hand-written cases below use low conversation numbers, so that all cases can be combined).
    A view model shows rows of a stored table, whose cases take its highest keys: it takes the lowest."""
    cases = []
    for name, doc in table_docs().items():
        key = ", ".join(f'"{c}"' for c in doc.primary_key)
        top = keys[name][::-1] if name in stored else keys[name]
        assert len(top) >= 2 + len(doc.foreign_keys), f"{name} has too few rows for its cases"
        cases += [
            Case(
                name,
                f"primary key ({key}) is unique",
                ERROR,
                _duplicate(name, top[0]),
                KEY_ALSO.get((name, "unique"), ()),
                shows=str(top[0][-1]),
            ),
            Case(
                name,
                f"primary key ({key}) is not null",
                ERROR,
                _null(name, top[1], doc.primary_key[-1]),
                KEY_ALSO.get((name, "not null"), ()),
            ),
            *(
                Case(
                    name,
                    f"{column.name} is found in {column.references}",
                    ERROR,
                    _orphan(name, top[2 + i], column.name),
                    KEY_ALSO.get((name, column.name), ()),
                    shows=f"missing_{column.name}=",
                )
                for i, column in enumerate(doc.foreign_keys)
            ),
        ]
    return cases


def _c(n: int, extra: str = "") -> str:
    return f"conversation_id = {conversation(n)}" + (f" AND {extra}" if extra else "")


def _conversation_cases(table: str, key: str, status: str, opened_at: str, lifecycle: bool) -> list[Case]:
    def on(n, **values):
        return lambda t: t.alter(table, f"{key} = {conversation(n)}", **values)

    cases = [
        Case(table, "user_id is not null", ERROR, on(2, user_id="NULL")),
        Case(table, f"{status} is not null", ERROR, on(6, **{status: "NULL"})),  # OPEN: no closing time to clash
        Case(
            table,
            f"{status} is OPEN, WAITING FOR CUSTOMER or CLOSED",
            ERROR,
            on(30, **{status: "'ESCALATED'"}),
            shows="ESCALATED",
        ),
        Case(table, f"{opened_at} is not null", ERROR, on(3, **{opened_at: "NULL"})),
        Case(table, "number_involved_agents is not null", ERROR, on(4, number_involved_agents="NULL")),
        Case(table, "number_involved_agents >= 0", ERROR, on(5, number_involved_agents="-1"), shows="-1"),
    ]
    if not lifecycle:
        return cases
    return cases + [
        Case(table, f"closed_at >= {opened_at}", ERROR, on(7, closed_at=f"{opened_at} - INTERVAL 1 HOUR")),
        Case(table, "hours_to_resolve >= 0", ERROR, on(8, hours_to_resolve="-1"), shows="-1"),
        Case(table, "payments_related is 0 or 1", ERROR, on(9, payments_related="2"), shows="2"),
        Case(table, "app_related is 0 or 1", ERROR, on(10, app_related="2"), shows="2"),
        Case(table, "login_related is 0 or 1", ERROR, on(11, login_related="2"), shows="2"),
        Case(table, "number_tags_assigned >= 0", ERROR, on(12, number_tags_assigned="-1"), shows="-1"),
        Case(table, "interaction_between_customer >= 0", ERROR, on(13, interaction_between_customer="-1"), shows="-1"),
        Case(table, "reopen_count >= 0", ERROR, on(14, reopen_count="-1"), shows="-1"),
        # WAITING FOR CUSTOMER, yet with a closing time.
        Case(
            table,
            "closed_at is set exactly when the status is CLOSED",
            ERROR,
            on(31, closed_at=f"{opened_at} + INTERVAL 1 HOUR"),
            shows=str(conversation(31)),
        ),
    ]


def _file(n: int, **values) -> Callable[[Tamper], None]:
    return lambda t: t.alter("ingested_files", f"file_id = {n}", **values)


def _volume(table: str) -> Case:
    return Case(
        table,
        "row count is within the band of the previous successful build (volume)",
        WARN,
        lambda t: t.baseline(table, 3),
        shows="allowed -0% .. +100%",
    )


def rule_cases() -> list[Case]:
    stg, files = "stg_conversation_events", "ingested_files"
    staged, rejected = (
        "rows_staged = the file's rows in stg_conversation_events",
        "rows_rejected = the file's rows in rejected_conversation_events",
    )
    balance = "rows_read = rows_staged + rows_rejected + duplicates_removed"

    def first_event(n, **values):
        return lambda t: t.alter(stg, _c(n, "event_sequence = 1"), **values)

    return [
        *(
            Case(stg, f"{column} is not null", ERROR, first_event(n, **{column: "NULL"}))
            for n, column in enumerate(
                [
                    "conversation_id",
                    "event_sequence",
                    "event_at",
                    "user_id",
                    "event",
                    "source_file",
                    "source_line",
                    "file_seq",
                ],
                start=2,
            )
        ),
        Case(
            stg,
            "event is a known event type",
            WARN,
            first_event(15, event="'customer_called'"),
            shows="customer_called",
        ),
        Case(
            stg,
            "status_changed_to values are known statuses",
            ERROR,
            lambda t: t.alter(
                stg, _c(16, "event = 'status_changed_to' AND event_value = 'CLOSED'"), event_value="'ESCALATED'"
            ),
            shows="ESCALATED",
        ),
        Case(
            stg,
            "event_at lies in the calendar",
            ERROR,
            lambda t: t.alter(stg, _c(19, "event_sequence = 2"), event_at="TIMESTAMP '2015-12-31 23:00:00'"),
            shows="2015-12-31",
        ),
        Case(
            stg, "each conversation has one user", WARN, first_event(17, user_id="1000001"), shows=str(conversation(17))
        ),
        Case(
            stg,
            "every conversation has a lifecycle row",
            ERROR,
            first_event(18, conversation_id="99999999999990"),
            shows="99999999999990",
        ),
        Case(
            stg,
            "latest event_at is recent enough (freshness)",
            WARN,
            None,
            shows="max age 24 h",
            checks={"freshness_max_age_hours": 24},
        ),
        Case(
            "rejected_conversation_events",
            "reason is not null",
            ERROR,
            lambda t: t.alter("rejected_conversation_events", "file_id = 1 AND source_line = 176", reason="NULL"),
        ),
        Case(files, "rows_read >= 0", ERROR, _file(1, rows_read="-1"), also=(balance,)),
        Case(files, "rows_staged >= 0", ERROR, _file(2, rows_staged="-1"), also=(balance, staged)),
        Case(files, "rows_rejected >= 0", ERROR, _file(3, rows_rejected="-1"), also=(balance, rejected)),
        # The balance still holds: only the count is impossible.
        Case(
            files,
            "duplicates_removed >= 0",
            ERROR,
            _file(4, duplicates_removed="-1", rows_read="rows_read - duplicates_removed - 1"),
        ),
        Case(files, balance, ERROR, _file(5, duplicates_removed="duplicates_removed + 1"), shows="file_id=5"),
        Case(
            files, staged, ERROR, _file(6, rows_staged="rows_staged + 1", rows_read="rows_read + 1"), shows="file_id=6"
        ),
        Case(
            files,
            rejected,
            ERROR,
            _file(7, rows_rejected="rows_rejected + 1", rows_read="rows_read + 1"),
            shows="file_id=7",
        ),
        *_conversation_cases("fact_conversation_lifecycle", "id", "status", "opened_at", lifecycle=True),
        *_conversation_cases(
            "fact_conversations", "conversation_id", "conversation_status", "conversation_started_at", lifecycle=False
        ),
        Case(
            "fact_conversation_lifecycle",
            "first_response_minutes >= 0",
            ERROR,
            lambda t: t.alter("fact_conversation_lifecycle", f"id = {conversation(15)}", first_response_minutes="-1"),
        ),
        Case(
            "fact_conversation_lifecycle",
            "id is a staged conversation",
            ERROR,
            lambda t: t.add("fact_conversation_lifecycle", f"id = {conversation(16)}", id="99999999999999"),
            shows="99999999999999",
        ),
        Case(
            "fact_conversation_tags",
            "times_assigned >= 1",
            ERROR,
            lambda t: t.alter("fact_conversation_tags", _c(3, "tag = 'payments'"), times_assigned="0"),
            shows="0",
        ),
        Case(
            "dim_date",
            "date is unique",
            ERROR,
            lambda t: t.alter("dim_date", "date_key = 20160102", date="DATE '2016-01-01'"),
            shows="2016-01-01",
        ),
        Case("dim_date", "date is not null", ERROR, lambda t: t.alter("dim_date", "date_key = 20160103", date="NULL")),
        Case(
            "dim_user",
            "conversation_count >= 0",
            ERROR,
            lambda t: t.alter("dim_user", "id = 1000002", conversation_count="-1"),
            shows="-1",
        ),
        Case(
            "dim_agent",
            "conversations_handled >= 1",
            ERROR,
            lambda t: t.alter("dim_agent", "id = 1002", conversations_handled="0"),
            shows="0",
        ),
        Case(
            "dim_tag",
            "tag is in the contact-reason mapping",
            WARN,
            lambda t: t.add("dim_tag", "tag = 'payments'", tag="'brand_new_tag'"),
            shows="brand_new_tag",
        ),
        *(_volume(table) for table in suites.VOLUME_TABLES),
    ]


# -- fixtures -------------------------------------------------------------------------------------
@dataclasses.dataclass
class Base:
    env: object
    first: object  # the seed build, whose tag mapping lacks refund_delay
    second: object  # eight more files, with the mapping completed
    keys: dict  # the published primary keys of every table, in order
    stored: set  # the tables stored in convo_store (the others are view models)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    tmp = tmp_path_factory.mktemp("quality")
    env = make_env(tmp, checks=BAND)
    first = runner.build(env, [str(ROOT / "seeds" / "raw_conversation_events.csv")])
    seeds = tmp / "seeds"
    seeds.mkdir()
    mapping = (ROOT / "seeds" / "tag_contact_reasons.csv").read_text()
    (seeds / "tag_contact_reasons.csv").write_text(mapping.rstrip("\n") + "\nrefund_delay,Refund delayed,Refunds\n")
    env = dataclasses.replace(env, seeds_dir=seeds)
    second = runner.build(env, [late_file(tmp, i) for i in range(LATE_FILES)])
    keys = {}
    for name, doc in table_docs().items():
        key = ", ".join(f'"{c}"' for c in doc.primary_key)
        keys[name] = [tuple(r.values()) for r in query(env, f'SELECT {key} FROM main."{name}" ORDER BY {key}')]
    stored = {
        r["table_name"]
        for r in query(env, "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [STORE])
    }
    return Base(env, first, second, keys, stored)


CASES = {c.id: c for c in rule_cases()}


def all_cases(base: Base) -> dict[str, Case]:
    return {**{c.id: c for c in key_cases(base.keys, base.stored)}, **CASES}


def tampered_copy(base: Base, folder: Path, tampers) -> object:
    """A copy of the base warehouse whose published version (2) carries the defects."""
    folder.mkdir(parents=True, exist_ok=True)
    env = dataclasses.replace(base.env, warehouse=folder / "warehouse.duckdb", reports_dir=folder / "reports")
    shutil.copy(base.env.warehouse, env.warehouse)
    apply(env.warehouse, tampers, 2, PUBLISHED)
    return env


def apply(warehouse: Path, tampers, version: int, schema: str) -> None:
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("CREATE TEMP SEQUENCE tamper_ids")
        for tamper in tampers:
            tamper(Tamper(con, version, schema))
    finally:
        con.close()


def failures(records, table: str | None = None) -> dict[str, object]:
    return {r.check_name: r for r in records if not r.success and table in (None, r.table_name)}


def published(env) -> dict:
    """A fingerprint of every published table and the published version."""
    prints = {
        doc: query(env, f'SELECT count(*) AS n, sum(hash(t)) AS h FROM {PUBLISHED}."{doc}" AS t')[0]
        for doc in table_docs()
    }
    return {
        "tables": prints,
        "version": query(env, f"SELECT max(version) AS v FROM {META}.versions WHERE state = 'published'")[0]["v"],
    }


# -- the base warehouse ---------------------------------------------------------------------------
def test_the_seed_builds_clean_except_its_unmapped_tag_which_warns_and_publishes(base):
    assert base.first.status == "success" and base.first.published_version == 1
    assert {(c.table_name, c.check_name, c.severity, c.sample) for c in base.first.checks if not c.success} == {
        ("dim_tag", "tag is in the contact-reason mapping", WARN, "unmapped_tag=refund_delay")
    }
    recorded = query(
        base.env,
        f"SELECT severity, success, sample FROM {META}.run_checks"
        " WHERE run_id = 1 AND check_name = 'tag is in the contact-reason mapping'",
    )
    assert recorded == [{"severity": WARN, "success": False, "sample": "unmapped_tag=refund_delay"}]
    # First build: nothing to compare volumes with.
    assert {c.table_name for c in base.first.checks if "(volume)" in c.check_name and c.result.get("skipped")} == set(
        suites.VOLUME_TABLES
    )


def test_the_base_warehouse_passes_every_check_it_can_run(base):
    assert base.second.status == "success"
    assert failures(base.second.checks) == {}
    skipped = {(c.table_name, c.check_name) for c in base.second.checks if c.result.get("skipped")}
    assert skipped == {("stg_conversation_events", "latest event_at is recent enough (freshness)")}
    names = {(t, e["description"]) for t, s in suites.suites().items() for e in s["expectations"]}
    assert {(c.table_name, c.check_name) for c in base.second.checks} == names


def test_every_expectation_has_a_case_that_breaks_it(base):
    names = {f"{t}: {e['description']}" for t, s in suites.suites().items() for e in s["expectations"]}
    assert set(all_cases(base)) == names


# -- one broken rule at a time --------------------------------------------------------------------
KEY_GROUPS = [
    f"{name}: key {kind}"
    for name, doc in table_docs().items()
    for kind in ("unique", "not null", *(("references",) if doc.foreign_keys else ()))
]


@pytest.mark.parametrize("case_id", [*CASES, *KEY_GROUPS])
def test_the_suite_reports_exactly_the_broken_rule_with_its_severity(base, case_id, tmp_path):
    cases = all_cases(base)
    if case_id in cases:
        selected = [cases[case_id]]
    else:  # a table's generated key checks of one kind: one test, one broken copy per check
        table, kind = case_id.split(": key ")
        selected = [c for c in cases.values() if c.table == table and _key_kind(c.check) == kind]
    for i, case in enumerate(selected):
        env = tampered_copy(base, tmp_path / str(i), [case.tamper] if case.tamper else [])
        env = dataclasses.replace(env, checks={**env.checks, **case.checks})
        records = audit.run(env.warehouse, PUBLISHED, env=env, version=2, tables=[case.table])
        failed = failures(records, case.table)
        assert set(failed) == {case.check, *case.also}, case.id
        check = failed[case.check]
        assert check.severity == case.severity, case.id
        if case.shows:
            assert case.shows in check.sample, (case.id, check.sample)
        assert check.result["expectation_config"]["meta"]["severity"] == case.severity


def _key_kind(check: str) -> str | None:
    if check.startswith("primary key"):
        return "unique" if check.endswith("is unique") else "not null"
    return "references" if " is found in " in check else None


# -- builds: an error keeps the candidate unpublished, a warning does not ---------------------------
def _write_defects_before_the_audit(monkeypatch, tampers) -> None:
    """Builds then write the tampers' defects into their unpublished version, as a model bug would:
    just before they copy their changed rows for the audit."""
    real_stage_changes = changes.stage_changes

    def defective_build(store, evaluation, version):
        con = store.wh.con.con
        con.execute("CREATE TEMP SEQUENCE IF NOT EXISTS tamper_ids")
        for tamper in tampers:
            tamper(Tamper(con, version, CANDIDATE))
        return real_stage_changes(store, evaluation, version)

    monkeypatch.setattr(changes, "stage_changes", defective_build)


def _build_with_defects(base: Base, tmp_path: Path, monkeypatch, cases: list[Case], **checks):
    """A build of one more file whose unpublished version carries the defects of `cases`."""
    env = tampered_copy(base, tmp_path, [])
    env = dataclasses.replace(env, checks={**env.checks, **checks})
    _write_defects_before_the_audit(monkeypatch, [c.tamper for c in cases if c.tamper])
    events = write_events(
        tmp_path / "next.csv",
        [("2024-04-16 9:00:00", str(conversation(60)), "1000001", "", "customer_message_received", "<m>")],
    )
    return env, [str(events)]


PK_EVENT_ID = 'primary key ("event_id") is unique'


def test_a_build_whose_candidate_breaks_any_error_rule_publishes_nothing_and_says_why(base, tmp_path, monkeypatch):
    errors = [c for c in all_cases(base).values() if c.severity == ERROR]
    env, files = _build_with_defects(base, tmp_path, monkeypatch, errors)
    before = published(env)
    with pytest.raises(runner.BuildFailed, match="audit failed, nothing published") as failed:
        runner.build(env, files, full_refresh=True)  # audits every row (an incremental build: below)
    run = failed.value.run
    assert published(env) == before
    recorded = query(env, f"SELECT status, message FROM {META}.runs WHERE run_id = ?", [run.run_id])[0]
    assert recorded["status"] == "failed" and recorded["message"] == run.message
    failing = {
        (r["table_name"], r["check_name"]): r
        for r in query(env, f"SELECT * FROM {META}.run_checks WHERE run_id = ? AND NOT success", [run.run_id])
    }
    # The build proves the event ids unique itself, so its audit of every row skips those two checks
    # and says so; `convo check` and the audit of an incremental build still run them.
    proven = {("stg_conversation_events", PK_EVENT_ID), ("fact_conversation_events", PK_EVENT_ID)}
    assert proven == {
        (t, e["description"])
        for t, s in suites.suites().items()
        for e in s["expectations"]
        if "proven_by_build" in e["meta"]
    }
    checks = {(c.table_name, c.check_name): c for c in run.checks}
    for case in errors:
        if (case.table, case.check) in proven:
            assert checks[case.table, case.check].result["skipped"], case.id
            assert checks[case.table, case.check].reason.startswith("skipped: the build established it ("), case.id
            continue
        assert failing[case.table, case.check]["severity"] == ERROR, case.id
        assert f"{case.table}: {case.check} (" in run.message, case.id
    assert {c.check for c in errors if (c.table, c.check) in proven} == {PK_EVENT_ID}


def test_a_build_whose_candidate_breaks_only_warn_rules_publishes_and_records_them(base, tmp_path, monkeypatch):
    warns = [c for c in all_cases(base).values() if c.severity == WARN]
    settings = {k: v for c in warns for k, v in c.checks.items()}
    env, files = _build_with_defects(base, tmp_path, monkeypatch, warns, **settings)
    run = runner.build(env, files, full_refresh=True)
    assert run.status == "success" and published(env)["version"] == run.run_id
    failing = {(c.table_name, c.check_name): c for c in run.checks if not c.success}
    assert set(failing) == {(c.table, c.check) for c in warns}
    stored = query(
        env,
        f"SELECT table_name, check_name, severity FROM {META}.run_checks WHERE run_id = ? AND NOT success",
        [run.run_id],
    )
    assert {(r["table_name"], r["check_name"], r["severity"]) for r in stored} == {
        (c.table, c.check, WARN) for c in warns
    }


def _incremental_build_with_defect(base: Base, folder: Path, monkeypatch, case: Case):
    """A build of one more file whose recomputed rows carry the case's defect."""
    env = tampered_copy(base, folder, [])
    _write_defects_before_the_audit(monkeypatch, [case.tamper])
    events = write_events(
        folder / "next.csv",
        [("2024-04-16 9:00:00", str(conversation(60)), "1000001", "", "customer_message_received", "<m>")],
    )
    return env, [str(events)]


def test_an_incremental_build_audits_the_partitions_it_changed_and_convo_check_audits_every_row(
    base, tmp_path, monkeypatch
):
    lifecycle, check = "fact_conversation_lifecycle", "status is OPEN, WAITING FOR CUSTOMER or CLOSED"

    def escalated(n: int) -> Case:
        return Case(
            lifecycle, check, ERROR, lambda t: t.alter(lifecycle, f"id = {conversation(n)}", status="'ESCALATED'")
        )

    # The new file's conversation (60) is recomputed, so its defect is seen and blocks publishing.
    env, files = _incremental_build_with_defect(base, tmp_path / "changed", monkeypatch, escalated(60))
    with pytest.raises(runner.BuildFailed, match=re.escape(f"{lifecycle}: {check} (1 failing)")):
        runner.build(env, files)
    monkeypatch.undo()
    # A row the build writes outside the partitions it recomputed is audited too.
    env, files = _incremental_build_with_defect(base, tmp_path / "written", monkeypatch, escalated(30))
    with pytest.raises(runner.BuildFailed, match=re.escape(f"{lifecycle}: {check} (1 failing)")):
        runner.build(env, files)
    monkeypatch.undo()
    # A defect already published in a conversation the build does not touch (30) is not read
    # again: the build publishes, and `convo check`, which reads every row, finds the defect.
    env = tampered_copy(base, tmp_path / "unchanged", [escalated(30).tamper])
    run = runner.build(env, files)
    assert run.status == "success" and not failures(run.checks)
    assert {c.table_name for c in run.checks} == set(table_docs())  # every suite ran, on the changed rows
    assert set(failures(runner.check(env).checks, lifecycle)) == {check}


def test_the_audit_runs_in_a_process_of_its_own_whose_log_reaches_the_build(base, tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="convo")  # as the CLI logs
    monkeypatch.setattr(audit_worker, "worth_starting", lambda: True)  # as if GX was not imported here
    env = tampered_copy(base, tmp_path, [])
    before = published(env)
    events = write_events(
        tmp_path / "next.csv",
        [("2024-04-16 9:00:00", str(conversation(60)), "1000001", "", "customer_message_received", "<m>")],
    )
    # The build prepares the suites and their parameters itself: a wrong setting stops it there.
    misconfigured = dataclasses.replace(env, checks={"freshness_max_age_days": 1})
    with pytest.raises(audit.ConfigError, match=re.escape("unknown [checks] settings ['freshness_max_age_days']")):
        runner.build(misconfigured, [str(events)])
    assert published(env) == before
    run = runner.build(env, [str(events)])
    assert run.status == "success"
    logged = (env.warehouse.parent / "logs" / env.name / f"run-{run.run_id:06d}.log").read_text()
    assert "INFO convo.audit.worker: audit process: Great Expectations imported in" in logged
    assert re.search(r"INFO convo.audit.validate: validated \d+ expectations on convo_candidate in [\d.]+ s\n", logged)


# -- convo check -------------------------------------------------------------------------------------
def test_convo_check_prints_each_failure_records_the_run_and_writes_data_docs(base, tmp_path, capsys):
    cases = all_cases(base)
    broken = [
        cases["fact_conversations: user_id is found in dim_user.id"],
        cases["stg_conversation_events: event is a known event type"],
    ]
    env = tampered_copy(base, tmp_path, [c.tamper for c in broken])
    (tmp_path / "expectations").symlink_to(ROOT / "expectations")
    config = tmp_path / "convo.toml"
    config.write_text(
        f'[defaults]\nseeds_dir = "{base.env.seeds_dir}"\nreports_dir = "reports"\n'
        "[defaults.checks]\nvolume_max_drop_pct = 0\nvolume_max_growth_pct = 100\n"
        "[environments.test]\n"
    )
    code = cli.main(["check", "--env", "test", "--config", str(config), "--warehouse", str(env.warehouse)])
    out = capsys.readouterr().out
    assert code == cli.EXIT_FAILED
    orphan = [line for line in out.splitlines() if "fact_conversations: user_id is found in dim_user.id" in line]
    assert orphan == [
        "  [error] fact_conversations: user_id is found in dim_user.id: 1 failing e.g. missing_user_id=-1 n_rows=1"
    ]
    assert "  [warn] stg_conversation_events: event is a known event type: 1 failing e.g. customer_called" in out
    assert "  [skipped] stg_conversation_events: latest event_at is recent enough (freshness):" in out
    assert "1 error, 1 warn" in out

    run = query(env, f"SELECT run_id, status, message FROM {META}.runs ORDER BY run_id DESC LIMIT 1")[0]
    assert run["status"] == "failed" and "1 error-level checks failed" in run["message"]
    stored = query(
        env,
        f"SELECT result FROM {META}.run_checks WHERE run_id = ? AND check_name = ?",
        [run["run_id"], "user_id is found in dim_user.id"],
    )
    results = [json.loads(r["result"]) for r in stored]
    fact = [r for r in results if r["expectation_config"]["kwargs"]["batch_id"].endswith("fact_conversations")]
    assert fact[0]["success"] is False and fact[0]["result"]["observed_value"] == 1
    assert fact[0]["result"]["details"]["unexpected_rows"] == [{"missing_user_id": -1, "n_rows": 1}]

    docs = tmp_path / "reports" / "test" / "data_docs"
    assert (docs / "index.html").is_file()
    assert {p.stem for p in (docs / "expectations").glob("*.html")} == set(table_docs())


# -- machinery ---------------------------------------------------------------------------------------
def test_gx_reads_duckdb_results_through_the_persisted_connection_shim(tmp_path):
    """Without `convo.audit.gx_duckdb`, GX loses DuckDB results and reports no counts at all."""
    path = tmp_path / "tiny.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES (1), (NULL), (3)) AS v(x)")
    con.close()
    suite = {"name": "t", "expectations": [suites.not_null("x", "test")]}
    results = validate(path, "main", [suite], parameters={}, run_name="shim")["t"]
    outcome = results[0]
    assert outcome["exception_info"]["raised_exception"] is False
    assert (outcome["success"], outcome["result"]["unexpected_count"]) == (False, 1)
    duckdb.connect(str(path)).close()  # the file can be opened read-write again: GX let go of it


def test_configurations_built_once_change_no_result(base, tmp_path, monkeypatch):
    """`convo.audit.gx_configurations` only saves work: on a warehouse that breaks every rule at
    once, every suite gives the same results as with GX's own `Expectation.configuration`."""
    cases = all_cases(base).values()
    env = tampered_copy(base, tmp_path, [c.tamper for c in cases if c.tamper])
    env = dataclasses.replace(env, checks={k: v for c in cases for k, v in c.checks.items()} | env.checks)

    def results() -> list[tuple]:
        records = audit.run(env.warehouse, PUBLISHED, env=env, version=2)
        return [(r.table_name, r.check_name, r.success, r.unexpected_count, r.sample, r.result) for r in records]

    # The freshness check's bound moves with the clock: both audits run at the same moment.
    now = datetime.datetime.now(datetime.UTC)
    frozen = SimpleNamespace(
        datetime=SimpleNamespace(now=lambda tz: now), UTC=datetime.UTC, timedelta=datetime.timedelta
    )
    monkeypatch.setattr(audit, "datetime", frozen)
    built_once = results()
    monkeypatch.setattr(Expectation, "configuration", gx_configurations.GX_PROPERTY)
    assert results() == built_once
    assert sum(not success for _, _, success, *_ in built_once) > 50


def test_commands_that_do_not_validate_do_not_import_great_expectations(base, tmp_path):
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(base.env.warehouse, copy)
    commands = [["--help"], ["runs", "--warehouse", str(copy)], ["rollback", "--warehouse", str(copy), "--to", "1"]]
    probe = (
        "import contextlib, io, json, sys\n"
        "from convo import cli\n"
        "codes = []\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            codes.append(cli.main(argv))\n"
        "        except SystemExit as exit:\n"
        "            codes.append(exit.code)\n"
        "print(json.dumps({'codes': codes, 'gx': 'great_expectations' in sys.modules}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(commands)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"CONVO_CONFIG": str(ROOT / "convo.toml"), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {"codes": [0, 0, 0], "gx": False}


def test_a_stale_or_missing_suite_is_an_error_check(base, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(ROOT / "expectations", root / "expectations")
    stale = json.loads((root / "expectations" / "dim_user.json").read_text())
    stale["expectations"].pop()  # e.g. written before a rule was added
    (root / "expectations" / "dim_user.json").write_text(json.dumps(stale))
    (root / "expectations" / "dim_agent.json").unlink()
    env = dataclasses.replace(base.env, root=root)
    records = audit.run(env.warehouse, PUBLISHED, env=env, version=2, tables=["dim_user", "dim_agent", "dim_tag"])
    assert {(r.table_name, r.check_name, r.severity) for r in records if not r.success} == {
        ("dim_user", "expectation suite is up to date", ERROR),
        ("dim_agent", "expectation suite is up to date", ERROR),
    }
    assert {r.table_name for r in records if r.success} == {"dim_tag"}  # stale suites do not run


def test_the_committed_suites_are_what_the_rules_and_model_docs_give():
    stored = {p.stem: json.loads(p.read_text()) for p in (ROOT / "expectations").glob("*.json")}
    assert stored == suites.suites(), "regenerate them: .venv/bin/python -m convo.audit.suites"


def test_unknown_or_invalid_check_settings_are_refused(base):
    for checks, message in (({"freshness_max_age_hour": 24}, "unknown"), ({"volume_max_drop_pct": "5"}, "number")):
        env = dataclasses.replace(base.env, checks=checks)
        with pytest.raises(audit.ConfigError, match=message):
            audit.run(env.warehouse, PUBLISHED, env=env, version=2, tables=["dim_user"])
