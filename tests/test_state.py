"""The state module (`convo.engine.state`) on a real DuckDB file: run history, versions, checks.

Every answer below is worked out by hand from the calls made; no build runs here.
"""

import datetime as dt
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import hypothesis.strategies as st
import pytest
from hypothesis import given

from convo.engine import state
from convo.engine.state import CheckRecord, Expiry, FileRecord, Run, RunLog, TableRecord, Versions
from convo.engine.warehouse import Warehouse, WarehouseLocked
from convo.provenance import CodeVersion

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib"


@pytest.fixture
def wh(tmp_path):
    warehouse = Warehouse(tmp_path / "w.duckdb", threads=1, memory_limit="500MB")
    yield warehouse
    warehouse.close()


def _statuses(wh: Warehouse) -> dict[int, str]:
    runs = RunLog(wh).runs(100)
    return {r.run_id: r.status for r in runs}


def _states(wh: Warehouse) -> dict[int, str]:
    return dict(wh.execute("SELECT version, state FROM convo_meta.versions ORDER BY version"))


# -- the run log ------------------------------------------------------------------------------
def test_a_run_is_recorded_as_running_then_finished_with_its_files_tables_and_checks(wh):
    log = RunLog(wh)
    run = log.start("dev", "build a.csv", full_refresh=True, code=CodeVersion("41e525d", False), config={"threads": 2})
    assert run.run_id == 1
    assert log.run_row(1).status == "running" and log.run_row(1).finished_at is None

    run.files = [
        FileRecord(1, "a.csv", "ab" * 32, "csv", "ingested", 5, 3, 1, 1),
        FileRecord(None, "notes.txt", None, None, "not read: not a .csv file"),
    ]
    run.tables = [TableRecord("dim_user", 2, 2, 0, 0.25)]
    run.checks = [
        CheckRecord("dim_user", "user_id is unique", "error", True, 0, None, "why", {"success": True}),
        CheckRecord("dim_user", "rows within band", "warn", False, 4, "7, 8", "volume", {"observed": 4}),
    ]
    run.status, run.message, run.published_version = "success", "done", 1
    log.finish(run)

    loaded = log.run(1)
    assert loaded == Run(
        1,
        "dev",
        "build a.csv",
        True,
        "success",
        "done",
        1,
        code=CodeVersion("41e525d", False),
        config={"threads": 2},
        # files: by file id, unread entries last; tables and checks by name
        files=run.files,
        tables=run.tables,
        checks=[run.checks[1], run.checks[0]],
    )
    row = log.run_row(1)
    assert (row.status, row.message, row.published_version, row.full_refresh) == ("success", "done", 1, True)
    assert row.finished_at >= row.started_at and row.seconds >= 0
    assert log.run(2) is None and log.run_row(2) is None


def test_run_ids_count_up_and_the_history_lists_the_newest_first(wh):
    log = RunLog(wh)
    for command in ("build a.csv", "check", "rollback", "build b.csv"):
        log.finish(log.start("dev", command))
    assert [(r.run_id, r.command) for r in log.runs(3)] == [(4, "build b.csv"), (3, "rollback"), (2, "check")]
    assert [r.run_id for r in log.runs(100)] == [4, 3, 2, 1]
    # builds strictly between two run ids: runs 2 and 3 are not builds, run 4 is
    assert (log.builds_between(1, 4), log.builds_between(1, 5), log.builds_between(0, 5)) == (0, 1, 2)


def test_runs_still_running_when_the_next_command_starts_are_marked_interrupted_once(wh):
    log = RunLog(wh)
    first, second = log.start("dev", "build a.csv"), log.start("dev", "check")
    second.status = "success"
    log.finish(second)
    log.start("dev", "build b.csv")  # dies too

    found = log.mark_interrupted()
    assert [(r["run_id"], r["command"]) for r in found] == [(1, "build a.csv"), (3, "build b.csv")]
    assert all(isinstance(r["started_at"], dt.datetime) for r in found)
    assert _statuses(wh) == {1: "failed", 2: "success", 3: "failed"}
    assert log.run(first.run_id).message == "interrupted: the process stopped part-way"
    assert log.run_row(1).finished_at is not None
    assert log.mark_interrupted() == []  # found once: the next command does not alert again


# -- versions -------------------------------------------------------------------------------
def test_versions_through_publish_rollback_discard_and_expire(wh):
    versions = Versions(wh)
    assert (versions.current_version(), versions.published()) == (0, state.Published(0, None))

    for v in (1, 2, 3):
        versions.record_published(v)
    assert (versions.current_version(), versions.published_versions()) == (3, [1, 2, 3])
    assert isinstance(versions.published().published_at, dt.datetime)

    versions.record_rollback(1)  # back two versions
    assert (versions.current_version(), versions.published_versions(), versions.rolled_back_versions()) == (
        1,
        [1],
        [2, 3],
    )
    versions.record_rollback(2)  # and forward again, before any build
    assert (versions.published_versions(), versions.rolled_back_versions()) == ([1, 2], [3])

    versions.record_discarded_after(2)  # the next build forgets version 3
    assert _states(wh) == {1: "published", 2: "published", 3: "discarded"}
    versions.record_discarded_after(2)  # a discarded version stays discarded, once
    assert _states(wh) == {1: "published", 2: "published", 3: "discarded"}

    for v in (4, 5):
        versions.record_published(v)
    assert versions.expire(keep=2) == Expiry((1, 2), 4)
    assert _states(wh) == {1: "expired", 2: "expired", 3: "discarded", 4: "published", 5: "published"}
    assert versions.expire(keep=2) == Expiry((), None)  # nothing more to expire
    assert versions.expire(keep=0) == Expiry((), None)  # 0 keeps every version
    assert versions.current_version() == 5


def test_publishing_a_version_again_keeps_when_it_was_first_published(wh):
    versions = Versions(wh)
    versions.record_published(1)
    first = versions.published().published_at
    versions.record_published(2)
    versions.record_rollback(1)
    versions.record_published(1)
    assert versions.published() == state.Published(1, first)
    assert _states(wh) == {1: "published", 2: "rolled_back"}


def test_version_bookkeeping_rolls_back_with_the_transaction_it_is_part_of(wh):
    versions = Versions(wh)
    versions.record_published(1)
    with pytest.raises(OSError, match="disk full"), wh.transaction():
        versions.record_published(2)
        versions.expire(keep=1)
        raise OSError("disk full")  # e.g. the store's view switch failed after the bookkeeping
    assert _states(wh) == {1: "published"}


@given(published=st.sets(st.integers(1, 10_000), max_size=30), keep=st.integers(0, 40))
def test_retention_keeps_exactly_the_newest_versions(published, keep):
    expiry = state.versions_to_expire(list(published), keep)
    newest_first = sorted(published, reverse=True)
    kept = newest_first if keep == 0 else newest_first[:keep]
    assert sorted(expiry.versions) + sorted(kept) == sorted(published)
    assert list(expiry.versions) == sorted(expiry.versions)
    if expiry.versions:
        assert expiry.oldest_kept == min(kept) and max(expiry.versions) < expiry.oldest_kept
    else:
        assert expiry.oldest_kept is None


# -- checks ---------------------------------------------------------------------------------
def _build(log: RunLog, versions: Versions, status: str, tables: dict[str, int], publish: bool) -> int:
    run = log.start("dev", "build x.csv")
    run.tables = [TableRecord(name, rows, rows, 0, 0.1) for name, rows in tables.items()]
    run.status = status
    log.finish(run)
    if publish:
        versions.record_published(run.run_id)
    return run.run_id


def test_the_volume_baseline_is_the_latest_successful_published_build_of_each_table(wh):
    log, versions = RunLog(wh), Versions(wh)
    _build(log, versions, "success", {"a": 10, "b": 5}, publish=True)  # run 1
    _build(log, versions, "success", {"a": 12}, publish=True)  # run 2: b unchanged, not recorded
    assert log.previous_row_counts(3) == {"a": (12, 2), "b": (5, 1)}
    assert log.previous_row_counts(2) == {"a": (10, 1), "b": (5, 1)}

    versions.record_rollback(1)  # run 2's version no longer counts
    _build(log, versions, "failed", {"a": 99}, publish=False)  # run 3: audit failed
    assert log.previous_row_counts(4) == {"a": (10, 1), "b": (5, 1)}
    versions.record_published(4)
    versions.expire(keep=1)  # version 1 expired: still what readers had, still a baseline
    assert log.previous_row_counts(4) == {"a": (10, 1), "b": (5, 1)}


def test_the_checks_of_the_recent_runs_that_ran_checks(wh):
    log = RunLog(wh)
    for n in range(1, 5):
        run = log.start("dev", "check" if n != 3 else "rollback")
        if n != 3:  # a rollback runs no check
            run.checks = [
                CheckRecord("t", "z rows", "warn", n % 2 == 0, n),
                CheckRecord("t", "a key", "error", True, 0),
            ]
        log.finish(run)
    assert [(c.run_id, c.check_name, c.success, c.unexpected_count) for c in log.checks_of_recent_runs(2)] == [
        (2, "a key", True, 0),
        (2, "z rows", True, 2),
        (4, "a key", True, 0),
        (4, "z rows", True, 4),
    ]


def test_a_runs_tables_and_files_in_the_order_it_recorded_them(wh):
    log = RunLog(wh)
    run = log.start("dev", "build")
    run.files = [FileRecord(2, "z.csv", "x", "csv", "ingested", 3, 3), FileRecord(1, "a.csv", "y", "csv", "ingested")]
    run.tables = [TableRecord("stg", 3, 3, 0, 0.5), TableRecord("dim", 1, 1, 0, 0.1)]
    log.finish(run)
    assert [(t.run_id, t.table_name, t.rows) for t in log.table_rows(1)] == [(1, "stg", 3), (1, "dim", 1)]
    assert [(f.path, f.rows_read) for f in log.file_rows(1)] == [("z.csv", 3), ("a.csv", 0)]
    assert log.table_rows(2) == () and log.file_rows(2) == ()


# -- reading from presentation ----------------------------------------------------------------
def test_presentation_reads_the_file_read_only_and_lets_go_of_it(tmp_path):
    path = tmp_path / "w.duckdb"
    wh = Warehouse(path)
    log, versions = RunLog(wh), Versions(wh)
    run = log.start("dev", "build a.csv")
    run.status = "success"
    log.finish(run)
    versions.record_published(1)
    wh.close()

    with state.read_only(path) as history:
        assert history.current_version() == 1
        assert [(r.run_id, r.status) for r in history.runs(10)] == [(1, "success")]
        # no writer's lock: another process can read the file at the same time
        other = f"import duckdb; print(duckdb.connect({str(path)!r}, read_only=True).sql('SELECT 42').fetchone()[0])"
        assert subprocess.run([sys.executable, "-c", other], capture_output=True, text=True).stdout == "42\n"
    Warehouse(path).close()  # the reader closed its connection: a writer can open the file again


def test_presentation_is_told_when_there_is_no_warehouse_or_the_builder_holds_it(tmp_path):
    missing = tmp_path / "none.duckdb"
    with pytest.raises(FileNotFoundError, match="none.duckdb: no warehouse here yet"), state.read_only(missing):
        pass
    assert not missing.exists()  # reading never creates the file

    path = tmp_path / "w.duckdb"
    Warehouse(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('ready', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(WarehouseLocked, match="w.duckdb is open in another process"), state.read_only(path):
            pass
    finally:
        holder.communicate("")


def test_a_history_from_before_the_code_columns_and_the_versions_table_reads_as_unknown(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        textwrap.dedent("""
        CREATE SCHEMA convo_meta;
        CREATE TABLE convo_meta.runs (
            run_id BIGINT PRIMARY KEY, environment VARCHAR, command VARCHAR, started_at TIMESTAMP,
            finished_at TIMESTAMP, status VARCHAR, message VARCHAR, published_version BIGINT, full_refresh BOOLEAN);
        INSERT INTO convo_meta.runs VALUES (1, 'dev', 'build', TIMESTAMP '2026-01-01 10:00:00',
            TIMESTAMP '2026-01-01 10:00:30', 'success', NULL, 1, false);
        """)
    )
    con.close()
    with state.read_only(path) as history:
        (row,) = history.runs(10)
        assert (row.run_id, row.code_commit, row.code_clean, row.seconds) == (1, None, None, 30.0)
        assert history.published() == state.Published(0, None)
        assert history.checks_of_recent_runs(5) == () and history.table_rows(1) == ()
        assert history.previous_row_counts(2) == {}
        assert history.run(1) == Run(1, "dev", "build", False, "success", None, 1)


def test_the_readers_copy_is_stamped_with_the_version_and_the_run_that_built_it(wh, tmp_path):
    log = RunLog(wh)
    run = log.start("dev", "build a.csv", code=CodeVersion("41e525d", True), config={"k": 1})
    log.finish(run)
    copy = tmp_path / "copy.duckdb"
    wh.execute(f"ATTACH '{copy}' AS copy")
    state.stamp_copy(wh, "copy", run.run_id)
    wh.execute("DETACH copy")
    con = duckdb.connect(str(copy), read_only=True)
    try:
        assert state.stamped_version(con) == 1
        assert con.execute(
            "SELECT environment, built_by_command, code_commit, code_clean, config::VARCHAR FROM convo_meta.published"
        ).fetchall() == [("dev", "build a.csv", "41e525d", True, '{"k": 1}')]
    finally:
        con.close()


# -- ownership ------------------------------------------------------------------------------
def test_only_the_state_module_mentions_the_state_schema():
    """By name, or by the constant that holds it (`META`, `_META`, imported from anywhere), in the
    package and in the project's other code (the notebooks, the developer tools, the benchmarks)."""
    owner = LIB / "convo" / "engine" / "state.py"
    sources = sorted(
        p for folder in (LIB, *(ROOT / d for d in ("notebooks", "tools", "benchmarks"))) for p in folder.rglob("*.py")
    )
    assert owner in sources and re.search(r"convo_meta", owner.read_text())
    mentioning = [
        str(p.relative_to(ROOT)) for p in sources if p != owner and re.search(r"convo_meta|\b_?META\b", p.read_text())
    ]
    assert mentioning == []
