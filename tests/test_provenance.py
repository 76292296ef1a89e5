"""Each run records the code it ran (git commit, clean tree or not) and its configuration."""

import json
import logging
import subprocess

import duckdb

from conftest import ROOT, make_env, query, write_events
from convo.build import runner
from convo.engine import state as recorded_state
from convo.provenance import CodeVersion, code_version, config_digest
from convo.site import state

CONVO = [str(ROOT / ".venv" / "bin" / "convo")]


def _git(folder, *args):
    subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)


def _repository(folder):
    folder.mkdir()
    _git(folder, "init", "-q")
    (folder / "model.py").write_text("x = 1\n")
    _git(folder, "add", "-A")
    _git(folder, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "first")
    head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    return head.strip()


def test_code_version_is_the_commit_and_whether_the_tree_was_clean(tmp_path):
    head = _repository(tmp_path / "repo")
    assert code_version(tmp_path / "repo") == CodeVersion(head, True)
    (tmp_path / "repo" / "model.py").write_text("x = 2\n")  # a change not committed
    assert code_version(tmp_path / "repo") == CodeVersion(head, False)
    assert CodeVersion(head, False).label == head[:7] + "+dirty"
    (tmp_path / "repo" / "model.py").write_text("x = 1\n")
    (tmp_path / "repo" / "new_model.py").write_text("y = 1\n")  # an untracked file runs too
    assert code_version(tmp_path / "repo").clean is False
    (tmp_path / "plain").mkdir()
    assert code_version(tmp_path / "plain") == CodeVersion(None, None)
    assert CodeVersion(None, None).label == "-"


def test_runs_record_code_and_configuration_and_convo_runs_shows_them(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="convo")  # as the CLI sets it: the run's log file gets INFO lines
    env = make_env(tmp_path, retain_versions=3)
    events = write_events(
        tmp_path / "a.csv", [("2024-05-02 9:00:00", "1", "501", "", "customer_message_received", "m")]
    )
    runner.build(env, [str(events)])
    (row,) = query(env, "SELECT code_commit, code_clean, config FROM convo_meta.runs")
    expected = code_version(ROOT)
    assert (row["code_commit"], row["code_clean"]) == (expected.commit, expected.clean)
    config = json.loads(row["config"])
    assert (config["name"], config["retain_versions"], config["memory_limit"]) == ("test", 3, "2GB")

    logged = (env.warehouse.parent / "logs" / "test" / "run-000001.log").read_text()
    assert f"run 1 (build {events}): code {expected.label}, configuration {config_digest(config)}" in logged

    listing = subprocess.run(
        [*CONVO, "runs", "--warehouse", str(env.warehouse)], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout.splitlines()
    assert listing[0].split()[:4] == ["run", "status", "version", "code"]
    assert listing[1].split()[:4] == ["1", "success", "1", expected.label]


def test_a_history_recorded_before_the_code_columns_still_lists(tmp_path):
    env = make_env(tmp_path)
    events = write_events(
        tmp_path / "a.csv", [("2024-05-02 9:00:00", "1", "501", "", "customer_message_received", "m")]
    )
    runner.build(env, [str(events)])
    con = duckdb.connect(str(env.warehouse))
    for column in ("code_commit", "code_clean", "config"):
        con.execute(f"ALTER TABLE convo_meta.runs DROP COLUMN {column}")
    con.close()
    with recorded_state.read_only(env.warehouse) as history:
        ((run_id, commit, clean),) = [(r.run_id, r.code_commit, r.code_clean) for r in history.runs(20)]
        loaded = history.run(1)
    assert (run_id, commit, clean) == (1, None, None)
    assert (loaded.code, loaded.config) == (CodeVersion(None, None), {})
    assert [(r.run_id, r.code_commit) for r in state.read(env.warehouse, {}).runs] == [(1, None)]
