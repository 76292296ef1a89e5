"""Alerts: a broken webhook URL never hides the run's error nor leaks, and killed runs alert."""

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import ROOT, make_env, write_events
from convo.build import runner
from convo.config import Notify
from test_audit_worker import _alive, _within

CONVO = str(ROOT / ".venv" / "bin" / "convo")
SECRET = "SECRETTOKEN456"


class _Webhook(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(monkeypatch):
    """A real HTTP server on 127.0.0.1 whose URL is in $CONVO_TEST_WEBHOOK; yields what it receives."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Webhook.received = []
    monkeypatch.setenv("CONVO_TEST_WEBHOOK", f"http://127.0.0.1:{server.server_port}/hooks/{SECRET}")
    yield _Webhook.received
    server.shutdown()
    server.server_close()


def _project(tmp_path: Path, alert_file: Path) -> Path:
    config = tmp_path / "convo.toml"
    config.write_text(
        f'[environments.dev]\nseeds_dir = "{ROOT / "seeds"}"\n'
        f'notify.webhook_url_env = "CONVO_TEST_WEBHOOK"\nnotify.command = "cat > {alert_file}"\n'
    )
    return config


@pytest.mark.parametrize(
    "url",
    [
        f"hooks.example.com/services/{SECRET}",
        f"https://hooks.example.com/services/{SECRET} ",
        f"https://hooks.example.com/ser vices/{SECRET}",
    ],
)
def test_an_unusable_webhook_url_is_named_never_shown_and_the_real_error_and_command_alert_remain(tmp_path, url):
    alert_file = tmp_path / "alert.json"
    config = _project(tmp_path, alert_file)
    result = subprocess.run(
        [CONVO, "build", "--config", str(config), str(tmp_path / "missing.csv")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=os.environ | {"CONVO_TEST_WEBHOOK": url},
    )
    assert result.returncode == 2, result.stderr
    assert SECRET not in result.stdout + result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("convo: ") and "missing.csv: file not found" in last_line  # the run's own error
    startup = next(line for line in result.stderr.splitlines() if "cannot reach the webhook" in line)
    assert "$CONVO_TEST_WEBHOOK is not a URL" in startup
    alert = json.loads(alert_file.read_text())  # the command alert ran
    assert alert["status"] == "failed" and "missing.csv: file not found" in alert["message"]
    assert alert["alert_problem"].startswith("webhook not alerted: $CONVO_TEST_WEBHOOK is not a URL")
    logs = list((tmp_path / "warehouse" / "logs" / "dev").glob("run-*.log"))
    assert logs and all(SECRET not in log.read_text() for log in logs)


def test_an_unreachable_webhook_is_reported_without_its_url(tmp_path, monkeypatch, caplog):
    # Port 9 of 127.0.0.1 refuses the connection: the failure is logged, the token is not.
    monkeypatch.setenv("CONVO_TEST_WEBHOOK", f"http://127.0.0.1:9/hooks/{SECRET}?token={SECRET}")
    alert_file = tmp_path / "alert.json"
    env = make_env(tmp_path, notify=Notify(webhook_url_env="CONVO_TEST_WEBHOOK", command=f"cat > {alert_file}"))
    with pytest.raises(Exception, match="file not found"):
        runner.build(env, [str(tmp_path / "missing.csv")])
    assert "alert to $CONVO_TEST_WEBHOOK failed" in caplog.text and SECRET not in caplog.text
    assert "file not found" in json.loads(alert_file.read_text())["message"]


# A build whose audit process stops while it holds the warehouse open (validating its first
# suite) and says its pid. The script is a file: the audit process, spawned, imports it again as
# `__mp_main__`, so the patch reaches it there only; the build runs as `__main__`.
_BUILD = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})

if __name__ == "__mp_main__":
    from convo.audit import validate

    def hold(batch_definition, *args):
        batch_definition.get_batch().head()  # reads the file
        print(os.getpid(), flush=True)
        time.sleep(600)

    validate._validate_in_memory = hold

if __name__ == "__main__":
    from conftest import make_env
    from convo.build import runner

    runner.build(make_env(Path({tmp!r})), [{events!r}])
"""


def _events(tmp_path, name, conversation):
    return write_events(
        tmp_path / name,
        [
            ("2024-05-02 9:00:00", conversation, "501", "", "customer_message_received", "hi"),
            ("2024-05-02 9:05:00", conversation, "501", "71", "status_changed_to", "Closed"),
        ],
    )


@pytest.mark.slow
def test_a_build_killed_in_its_audit_leaves_no_process_holding_the_warehouse_and_alerts_the_next_command(
    tmp_path, webhook
):
    env = make_env(tmp_path)
    runner.build(env, [str(_events(tmp_path, "a.csv", "30000000000001"))])
    events = _events(tmp_path, "b.csv", "30000000000002")
    script = tmp_path / "build.py"
    script.write_text(_BUILD.format(tests=str(ROOT / "tests"), tmp=str(tmp_path), events=str(events)))
    build = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    auditor = int(build.stdout.readline())
    assert auditor != build.pid and str(env.warehouse) in _open_files(auditor)
    build.kill()  # from outside, as an operator or the OOM killer would
    assert build.wait() == -9
    assert _within(5, lambda: not _alive(auditor))  # the audit process went with it

    alert_file = tmp_path / "alert.json"
    env = make_env(tmp_path, notify=Notify(webhook_url_env="CONVO_TEST_WEBHOOK", command=f"cat > {alert_file}"))
    run = runner.build(env, [str(events)])
    assert run.status == "success"
    [alert] = webhook  # one alert: the interrupted run; the build that found it succeeded
    assert alert["status"] == "interrupted" and alert["environment"] == "test" and alert["command"] == "build"
    assert [r["run_id"] for r in alert["interrupted_runs"]] == [2]
    assert alert["interrupted_runs"][0]["command"] == f"build {events}"
    assert "run 2 `build " in alert["message"] and "stopped part-way" in alert["message"]
    assert json.loads(alert_file.read_text()) == alert

    runner.check(env)  # reported once: the next command finds nothing left running
    assert len(webhook) == 1


def _open_files(pid: int) -> list[str]:
    folder = Path(f"/proc/{pid}/fd")
    return [os.readlink(folder / fd) for fd in os.listdir(folder)]
