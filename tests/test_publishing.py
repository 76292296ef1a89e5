"""Write, audit, publish: audits block publishing, rollback, crashes, concurrency, alerts."""

import dataclasses
import http.server
import json
import signal
import subprocess
import threading
import time

import pytest

from conftest import ROOT, make_env, query, write_events
from convo.build import runner
from convo.config import Notify
from convo.lock import EnvironmentBusy
from convo.models import registry
from generate import generate
from warehouse_snapshot import snapshot

CONVO = [str(ROOT / ".venv" / "bin" / "convo")]


def _events(tmp_path, name, conversation, minute=0):
    return str(
        write_events(
            tmp_path / name,
            [
                (f"2024-05-02 9:{minute:02d}:00", conversation, "501", "", "customer_message_received", "<m>"),
                (f"2024-05-02 9:{minute + 5:02d}:00", conversation, "501", "71", "status_changed_to", "Closed"),
            ],
        )
    )


INTERRUPTED_CONVERSATIONS = 1_000


@pytest.fixture(scope="module")
def interrupted_events(tmp_path_factory):
    """Events for a build that is killed or stopped when a log line appears. Any size will do: what
    follows each line the tests wait for (the other models, then the audit of the whole candidate,
    which runs Great Expectations' suites for seconds even on a few rows) outlasts the signal."""
    path = tmp_path_factory.mktemp("interrupted") / "events.csv"
    generate(INTERRUPTED_CONVERSATIONS, path, seed=3)
    return path


def test_failed_audit_publishes_nothing_and_records_why(tmp_path, monkeypatch):
    env = make_env(tmp_path)
    runner.build(env, [_events(tmp_path, "a.csv", "30000000000001")])
    before = snapshot(env.warehouse)

    # A defect in a model: every conversation twice, so the primary key check fails.
    original = registry._MODELS["fact_conversations"]
    doubled = dataclasses.replace(
        original,
        fn=lambda int_conversation_summary: original.fn(int_conversation_summary).union(
            original.fn(int_conversation_summary), distinct=False
        ),
    )
    monkeypatch.setitem(registry._MODELS, "fact_conversations", doubled)
    with pytest.raises(runner.BuildFailed, match="audit failed, nothing published") as failure:
        runner.build(env, [_events(tmp_path, "b.csv", "30000000000002")])
    assert 'fact_conversations: primary key ("conversation_id") is unique' in str(failure.value)
    assert snapshot(env.warehouse) == before
    run = query(env, "SELECT status, message FROM convo_meta.runs WHERE run_id = 2")[0]
    assert run["status"] == "failed" and "fact_conversations" in run["message"]
    checks = query(
        env,
        "SELECT success, unexpected_count FROM convo_meta.run_checks WHERE run_id = 2"
        " AND table_name = 'fact_conversations' AND check_name LIKE 'primary key%unique'",
    )
    assert checks == [{"success": False, "unexpected_count": 1}]  # only the new conversation was recomputed

    monkeypatch.setitem(registry._MODELS, "fact_conversations", original)
    assert runner.build(env, [_events(tmp_path, "b.csv", "30000000000002")]).status == "success"
    assert len(query(env, "SELECT * FROM fact_conversations")) == 2


def test_rollback_restores_the_previous_version_and_back(tmp_path):
    env = make_env(tmp_path)
    runner.build(env, [_events(tmp_path, "a.csv", "30000000000001")])
    v1 = snapshot(env.warehouse)
    runner.build(env, [_events(tmp_path, "b.csv", "30000000000001", minute=30)])  # same conversation, later
    v2 = snapshot(env.warehouse)
    assert v1 != v2
    assert runner.rollback(env).published_version == 1
    assert snapshot(env.warehouse) == v1
    assert runner.rollback(env, to=2).published_version == 2
    assert snapshot(env.warehouse) == v2
    runner.rollback(env, to=1)
    # A new build on top of version 1 drops version 2 for good, and the file of version 2 can be loaded again.
    run = runner.build(env, [_events(tmp_path, "b.csv", "30000000000001", minute=30)])
    assert run.files[0].action == "ingested"
    assert snapshot(env.warehouse, {"ingested_files": {"run_id"}}) == {
        **v2,
        "ingested_files": snapshot(env.warehouse, {"ingested_files": {"run_id"}})["ingested_files"],
    }
    with pytest.raises(ValueError, match="version 2 cannot be restored"):
        runner.rollback(env, to=2)


def test_retention_keeps_the_last_n_versions(tmp_path):
    env = make_env(tmp_path, retain_versions=2)
    for i in range(4):
        runner.build(env, [_events(tmp_path, f"{i}.csv", "30000000000001", minute=10 * i)])
    states = query(env, "SELECT version, state FROM convo_meta.versions ORDER BY version")
    assert states == [
        {"version": 1, "state": "expired"},
        {"version": 2, "state": "expired"},
        {"version": 3, "state": "published"},
        {"version": 4, "state": "published"},
    ]
    with pytest.raises(ValueError, match="version 2 cannot be restored"):
        runner.rollback(env, to=2)
    assert runner.rollback(env).published_version == 3
    # Rows only versions 1 and 2 could see are gone from storage.
    old = query(env, "SELECT count(*) AS n FROM convo_store.stg_conversation_events WHERE _valid_to <= 3")
    assert old == [{"n": 0}]


def _start_build(env, events):
    return subprocess.Popen(
        [*CONVO, "build", "--warehouse", str(env.warehouse), str(events)],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _wait_for(process, text, timeout=120):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        seen.append(line)
        if text in line:
            return
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"{text!r} never appeared; the build printed:\n{''.join(seen)}")


@pytest.mark.parametrize("kill_after", ["stg_conversation_events:", "auditing version"])
def test_killed_build_leaves_the_published_version_and_the_next_build_recovers(
    tmp_path, interrupted_events, kill_after
):
    env = make_env(tmp_path)
    runner.build(env, [_events(tmp_path, "a.csv", "30000000000001")])
    before = snapshot(env.warehouse)
    process = _start_build(env, interrupted_events)
    _wait_for(process, kill_after)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert snapshot(env.warehouse) == before
    run = runner.build(env, [str(interrupted_events)])
    assert run.status == "success"
    runs = {r["run_id"]: r["status"] for r in query(env, "SELECT run_id, status FROM convo_meta.runs")}
    assert runs == {1: "success", 2: "failed", 3: "success"}
    assert query(env, "SELECT count(*) AS n FROM fact_conversations")[0]["n"] == INTERRUPTED_CONVERSATIONS + 1


def test_a_killed_first_build_is_recovered_by_the_next_build(tmp_path, interrupted_events):
    """A first build killed after writing its version leaves every stored table, empty once
    discarded: the next build must compute each of them whole, the calendar included (it has no
    input that could say it changed), and publish what a clean first build publishes."""
    killed, clean = make_env(tmp_path / "killed"), make_env(tmp_path / "clean")
    process = _start_build(killed, interrupted_events)
    _wait_for(process, "auditing version")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert runner.build(killed, [str(interrupted_events)]).status == "success"
    assert runner.build(clean, [str(interrupted_events)]).status == "success"
    for table in ("dim_date", "dim_user", "fact_conversation_lifecycle", "mart_contact_reasons_daily"):
        columns = [
            r["column_name"]
            for r in query(
                clean,
                "SELECT column_name FROM information_schema.columns"
                f" WHERE table_schema = 'main' AND table_name = '{table}'",
            )
        ]
        sql = f"SELECT {', '.join(c for c in columns if c != 'updated_at')} FROM {table} ORDER BY ALL"
        assert query(killed, sql) == query(clean, sql), table


def test_second_build_on_the_same_environment_fails_fast(tmp_path, interrupted_events):
    env = make_env(tmp_path)
    first = _start_build(env, interrupted_events)
    _wait_for(first, "reading")
    # Stopped, the first build holds its lock for as long as the second one takes to start, at any size.
    first.send_signal(signal.SIGSTOP)
    started = time.monotonic()
    second = subprocess.run(
        [*CONVO, "build", "--warehouse", str(env.warehouse)], capture_output=True, text=True, cwd=ROOT
    )
    first.send_signal(signal.SIGCONT)
    assert second.returncode == 3
    assert "is busy" in second.stderr and "convo build" in second.stderr
    assert time.monotonic() - started < 15  # fails at once: no waiting for the first build
    _, printed = first.communicate()
    assert first.returncode == 0
    assert "Warning" not in printed  # e.g. the resource tracker's, about its audit process
    with pytest.raises(EnvironmentBusy):  # in-process too, while a lock is held
        from convo.lock import exclusive

        with exclusive(env.warehouse, env.name, "build"):
            runner.build(env, [str(interrupted_events)])


class _Webhook(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_failure_alerts_a_webhook_and_a_command(tmp_path, monkeypatch):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Webhook.received = []
    monkeypatch.setenv("CONVO_TEST_WEBHOOK", f"http://127.0.0.1:{server.server_port}/hooks/secret-token")
    alert_file = tmp_path / "alert.json"
    env = make_env(tmp_path, notify=Notify(webhook_url_env="CONVO_TEST_WEBHOOK", command=f"cat > {alert_file}"))
    with pytest.raises(Exception, match="file not found"):
        runner.build(env, [str(tmp_path / "missing.csv")])
    server.shutdown()
    [(path, content_type, summary)] = _Webhook.received
    assert path == "/hooks/secret-token" and content_type == "application/json"
    assert summary["status"] == "failed" and summary["environment"] == "test"
    assert "missing.csv: file not found" in summary["message"]
    assert json.loads(alert_file.read_text())["run_id"] == summary["run_id"]


def test_success_sends_no_alert(tmp_path):
    alert_file = tmp_path / "alert.json"
    env = make_env(tmp_path, notify=Notify(command=f"touch {alert_file}"))
    runner.build(env, [_events(tmp_path, "a.csv", "30000000000001")])
    assert not alert_file.exists()
