"""Readers of the published copy, in processes of their own: they never block a build, a run or a
rollback, and each sees one whole version, the one that was published when it opened the file."""

import dataclasses
import json
import logging
import shutil
import signal
import subprocess
import sys

import duckdb
import pytest

from conftest import ROOT, make_env, query, write_events
from convo import config as convo_config
from convo.audit import worker as audit_worker
from convo.build import runner
from convo.engine import published_copy, state
from convo.engine.store import Store
from convo.models import registry
from convo.provenance import code_version
from notebook_references import kernel_environment, sample_project

CONVO = [str(ROOT / ".venv" / "bin" / "convo")]

# Opens the published copy once, read-only, and answers each line on stdin with what it sees.
READER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
for _ in sys.stdin:
    version = con.execute("SELECT version FROM convo_meta.published").fetchone()[0]
    conversations = con.execute("SELECT count(*) FROM fact_conversations").fetchone()[0]
    events = con.execute("SELECT count(*) FROM fact_conversation_events").fetchone()[0]
    print(version, conversations, events, flush=True)
"""


class Reader:
    """An analyst's session: one connection, held open until `close`."""

    def __init__(self, path):
        self.process = subprocess.Popen(
            [sys.executable, "-c", READER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.sees()  # connected

    def sees(self) -> tuple[int, int, int]:
        """(version, conversations, events) as this connection reads them now."""
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, self.process.stderr.read()
        return tuple(int(v) for v in line.split())

    def close(self) -> None:
        self.process.stdin.close()
        assert self.process.wait(timeout=30) == 0, self.process.stderr.read()


def _conversation(tmp_path, name, conversation):
    return str(
        write_events(
            tmp_path / name,
            [
                ("2024-05-02 9:00:00", conversation, "501", "", "customer_message_received", "<m>"),
                ("2024-05-02 9:05:00", conversation, "501", "71", "status_changed_to", "Closed"),
            ],
        )
    )


def test_held_open_readers_block_no_build_or_rollback_and_keep_their_version(tmp_path):
    # The builds and rollbacks run in this process; each reader holds the copy open in its own.
    env = make_env(tmp_path, "dev")
    copy = published_copy.path_of(env.warehouse)
    assert copy == tmp_path / "warehouse" / "dev.published.duckdb"
    assert runner.build(env, [_conversation(tmp_path, "a.csv", "30000000000001")]).status == "success"
    first = Reader(copy)
    assert first.sees() == (1, 1, 2)

    assert runner.build(env, [_conversation(tmp_path, "b.csv", "30000000000002")]).status == "success"
    assert first.sees() == (1, 1, 2)  # the version it opened, whole
    second = Reader(copy)
    assert second.sees() == (2, 2, 4)  # opened after the publish: the new version

    assert runner.rollback(env).published_version == 1
    assert first.sees() == (1, 1, 2) and second.sees() == (2, 2, 4)
    third = Reader(copy)
    assert third.sees() == (1, 1, 2)

    assert runner.rollback(env, to=2).published_version == 2
    for reader in (first, second, third):
        reader.close()
    last = Reader(copy)
    assert last.sees() == (2, 2, 4)
    last.close()
    assert sorted(p.name for p in copy.parent.glob("dev.published*")) == ["dev.published.duckdb"]


def _published(path):
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [d[0] for d in con.execute("SELECT * FROM convo_meta.published").description]
        (row,) = con.execute("SELECT * FROM convo_meta.published").fetchall()
        return dict(zip(names, row))
    finally:
        con.close()


def _assert_copy_is_published(env):
    """The readers' copy holds exactly what the builder's published views show."""
    builder = duckdb.connect(str(env.warehouse), read_only=True)
    copied = duckdb.connect(str(published_copy.path_of(env.warehouse)), read_only=True)
    try:
        listing = "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'main'"
        published = {name for name, _ in builder.execute(listing).fetchall()}
        in_copy = dict(copied.execute(listing).fetchall())
        assert set(in_copy) == published
        assert in_copy["fact_conversation_events"] == "VIEW"  # a view model stays a view, over the copy's table
        for name in published:
            rows = f'SELECT * FROM "{name}" ORDER BY ALL'
            assert copied.execute(rows).fetchall() == builder.execute(rows).fetchall(), name
    finally:
        builder.close()
        copied.close()


def _late_event(tmp_path, name, conversation, status):
    return str(
        write_events(tmp_path / name, [("2024-05-02 10:00:00", conversation, "501", "71", "status_changed_to", status)])
    )


def test_the_copy_holds_every_published_table_and_says_which_code_built_it(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="convo")
    env = make_env(tmp_path, retain_versions=2)
    runner.build(env, [_conversation(tmp_path, "a.csv", "30000000000001")])
    _assert_copy_is_published(env)
    stamp = _published(published_copy.path_of(env.warehouse))
    code = code_version(ROOT)
    assert (stamp["environment"], stamp["version"], stamp["code_commit"], stamp["code_clean"]) == (
        "test",
        1,
        code.commit,
        code.clean,
    )
    assert json.loads(stamp["config"])["retain_versions"] == 2

    # Each later copy starts from the one before and takes the rows that differ: changed rows
    # (a late status reopens conversation 1), new rows, both ways through rollbacks, and retention.
    steps = [
        lambda: runner.build(
            env,
            [
                _late_event(tmp_path, "b.csv", "30000000000001", "Open"),
                _conversation(tmp_path, "c.csv", "30000000000002"),
            ],
        ),
        lambda: runner.rollback(env),
        lambda: runner.rollback(env, to=2),
        lambda: runner.build(env, [_late_event(tmp_path, "d.csv", "30000000000002", "Waiting for customer")]),
        lambda: runner.build(env, [_conversation(tmp_path, "e.csv", "30000000000003")]),
        lambda: runner.build(env, [str(ROOT / "seeds" / "raw_conversation_events.csv")], full_refresh=True),
    ]
    for (version, base), step in zip([(2, 1), (1, 2), (2, 1), (5, 2), (6, 5), (7, 6)], steps):
        caplog.clear()
        assert step().published_version == version  # a version is the run id of its build
        assert f"readers' copy of version {version}: from the copy of version {base} and the rows" in caplog.text
        assert _published(published_copy.path_of(env.warehouse))["version"] == version
        _assert_copy_is_published(env)


def test_a_failed_build_leaves_the_copy_as_it_was(tmp_path, monkeypatch):
    env, copy, before = _built_once(tmp_path)

    monkeypatch.setattr(Store, "expire", _full_disk)  # the last step of the publishing transaction
    with pytest.raises(OSError, match="No space left"):
        runner.build(env, [_conversation(tmp_path, "b.csv", "30000000000002")])
    assert copy.read_bytes() == before
    assert query(env, "SELECT count(*) AS n FROM fact_conversations") == [{"n": 1}]
    assert not list(copy.parent.glob("*.writing*"))


def test_a_build_killed_after_writing_the_copy_publishes_nothing_and_the_next_one_recovers(tmp_path):
    env, copy, before = _built_once(tmp_path)
    process = subprocess.Popen(
        [*CONVO, "build", "--warehouse", str(env.warehouse), _conversation(tmp_path, "b.csv", "30000000000002")],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    for line in process.stderr:
        if "readers' copy of version 2 written" in line:
            process.send_signal(signal.SIGKILL)
            break
    assert process.wait() == -signal.SIGKILL
    assert copy.read_bytes() == before  # written beside it, never swapped in
    assert runner.build(env, [_conversation(tmp_path, "c.csv", "30000000000003")]).status == "success"
    assert _published(copy)["version"] == 3
    assert not list(copy.parent.glob("*.writing*"))


def test_the_copy_written_while_the_audit_process_validates_is_published_only_if_all_passes(
    tmp_path, monkeypatch, caplog
):
    # This process has imported Great Expectations (other tests audited in it): start the audit
    # process anyway, as a `convo` command does, so that the copy is written beside its validation.
    monkeypatch.delitem(sys.modules, audit_worker.VALIDATE, raising=False)
    caplog.set_level(logging.INFO, logger="convo")

    def written_once_before_validated(version: int) -> bool:
        line = f"readers' copy of version {version} written"
        validated = caplog.text.index("validated ", caplog.text.index(f"auditing version {version}"))
        return caplog.text.count(line) == 1 and caplog.text.index(line) < validated

    env = make_env(tmp_path)
    assert runner.build(env, [_conversation(tmp_path, "a.csv", "30000000000001")]).published_version == 1
    assert "audit process started" in caplog.text and written_once_before_validated(1)
    _assert_copy_is_published(env)
    copy = published_copy.path_of(env.warehouse)
    before = copy.read_bytes()

    # An error-level check fails: the copy, written meanwhile, is removed.
    caplog.clear()
    original = registry._MODELS["fact_conversations"]
    doubled = dataclasses.replace(
        original, fn=lambda int_conversation_summary: _twice(original.fn(int_conversation_summary))
    )
    monkeypatch.setitem(registry._MODELS, "fact_conversations", doubled)
    with pytest.raises(runner.BuildFailed, match="audit failed"):
        runner.build(env, [_conversation(tmp_path, "b.csv", "30000000000002")])
    assert written_once_before_validated(2)
    assert copy.read_bytes() == before and not list(copy.parent.glob("*.writing*"))
    monkeypatch.setitem(registry._MODELS, "fact_conversations", original)

    # The copy fails while the audit passes: nothing is published.
    monkeypatch.setattr(state, "stamp_copy", _full_disk)
    with pytest.raises(OSError, match="No space left"):
        runner.build(env, [_conversation(tmp_path, "c.csv", "30000000000003")])
    assert copy.read_bytes() == before and not list(copy.parent.glob("*.writing*"))
    assert query(env, "SELECT count(*) AS n FROM fact_conversations") == [{"n": 1}]


def _built_once(tmp_path):
    """An environment with one published build; its readers' copy, and the copy's bytes."""
    env = make_env(tmp_path)
    runner.build(env, [_conversation(tmp_path, "a.csv", "30000000000001")])
    copy = published_copy.path_of(env.warehouse)
    return env, copy, copy.read_bytes()


def _full_disk(*args, **kwargs):
    raise OSError("No space left on device")


def _twice(table):
    return table.union(table, distinct=False)


def test_an_audit_that_breaks_while_the_copy_is_written_stops_and_removes_the_copy(tmp_path, monkeypatch):
    env, copy, before = _built_once(tmp_path)

    def broken_audit(*args, **kwargs):
        raise RuntimeError("the audit broke")

    # As if the audit process had started: the copy is written beside the audit, which then breaks.
    monkeypatch.setattr(audit_worker.AuditWorker, "started", True)
    monkeypatch.setattr(runner.audit, "run", broken_audit)
    with pytest.raises(RuntimeError, match="the audit broke"):
        runner.build(env, [_conversation(tmp_path, "b.csv", "30000000000002")])
    assert copy.read_bytes() == before and not list(copy.parent.glob("*.writing*"))
    monkeypatch.undo()
    assert runner.build(env, [_conversation(tmp_path, "b.csv", "30000000000002")]).published_version == 3
    _assert_copy_is_published(env)


def test_a_missing_or_stale_copy_is_rewritten_by_the_next_build(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="convo")
    env = make_env(tmp_path)
    events = _conversation(tmp_path, "a.csv", "30000000000001")
    runner.build(env, [events])
    copy = published_copy.path_of(env.warehouse)
    copy.unlink()  # e.g. a warehouse built before the copies existed
    assert runner.build(env, [events]).status == "noop"
    assert _published(copy)["version"] == 1
    assert "readers' copy of version 1: every row" in caplog.text
    _assert_copy_is_published(env)


@pytest.mark.slow
def test_a_held_open_reader_does_not_fail_convo_run(tmp_path):
    """`convo run` builds in its first notebook, in a kernel of its own, then reports and builds the site."""
    project = sample_project(ROOT, tmp_path / "project")
    shutil.copy(ROOT / "notebooks" / "10_ingest.py", project / "notebooks")
    environment = kernel_environment(project)
    warehouse = project / "warehouse" / "dev.duckdb"
    # The first version is built in this process: only the run below needs a command of its own.
    dev = convo_config.load("dev", config=project / convo_config.CONFIG_NAME)
    assert dev.warehouse == warehouse
    assert runner.build(dev, [_conversation(tmp_path, "a.csv", "30000000000001")]).status == "success"
    reader = Reader(published_copy.path_of(warehouse))
    assert reader.sees() == (1, 1, 2)

    run = subprocess.run(
        [*CONVO, "run", "--date", "2024-05-02", _conversation(tmp_path, "b.csv", "30000000000002")],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert reader.sees() == (1, 1, 2)
    later = Reader(published_copy.path_of(warehouse))
    assert later.sees() == (2, 2, 4)
    for r in (reader, later):
        r.close()
    # The run's own record says which code and configuration it used: outside a git checkout, no commit.
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        ((command, commit, config),) = con.execute(
            "SELECT command, code_commit, config FROM convo_meta.runs WHERE command LIKE 'run %'"
        ).fetchall()
    finally:
        con.close()
    # Inputs are recorded relative to the project, as the reports show them.
    assert command == "run --date 2024-05-02 ../b.csv" and commit is None
    assert json.loads(config)["root"] == str(project)
