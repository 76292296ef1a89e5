"""Command-line errors: environment names, odd warehouse paths and a full disk give one line, no traceback."""

import contextlib
import errno
import json
import os
import subprocess

import pytest

from conftest import ROOT, write_events
from convo import config as convo_config
from convo.build import runner
from convo.cli import main
from warehouse_snapshot import snapshot

CONVO = str(ROOT / ".venv" / "bin" / "convo")


def _events(folder, name, conversation):
    return write_events(
        folder / name,
        [
            ("2024-05-02 9:00:00", conversation, "501", "", "customer_message_received", "hi"),
            ("2024-05-02 9:05:00", conversation, "501", "71", "status_changed_to", "Closed"),
        ],
    )


def _config(tmp_path, body="[environments.dev]\n"):
    """A project in `tmp_path`: its convo.toml, and the checkout's expectation suites."""
    if not (tmp_path / "expectations").exists():
        (tmp_path / "expectations").symlink_to(ROOT / "expectations")
    config = tmp_path / "convo.toml"
    config.write_text(f'[defaults]\nseeds_dir = "{ROOT / "seeds"}"\n{body}')
    return config


def _convo(*args, cwd):
    return subprocess.run([CONVO, *map(str, args)], capture_output=True, text=True, cwd=cwd)


def _one_line_error(result) -> str:
    """The command's error: its last line on stderr, with no traceback before it."""
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("convo: "), result.stderr
    return last


@pytest.mark.parametrize("name", ["../../x", "a/b", "dev prod", "x;rm", ""])
def test_environment_names_hold_only_letters_digits_dash_and_underscore(tmp_path, name):
    project = tmp_path / "project"
    project.mkdir()
    # Even an environment that convo.toml defines under that name is refused before any file is made.
    config = _config(project, f'[environments."{name}"]\n')
    result = _convo("build", "--env", name, "--config", config, _events(tmp_path, "a.csv", "1"), cwd=project)
    assert result.returncode == 2
    assert f"environment name {name!r} is not allowed: use only letters, digits, '-' and '_'" in _one_line_error(result)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.csv", "convo.toml", "expectations", "project"]


def _convo_here(*args, cwd, monkeypatch) -> int:
    """A command that succeeds, run in this process (its audit runs in place): where it puts its
    files is what is tested, not its process."""
    monkeypatch.chdir(cwd)
    return main([*map(str, args)])


def test_environment_names_with_dash_and_underscore_are_fine(tmp_path, monkeypatch):
    config = _config(tmp_path, "[environments.eu-west_2]\n")
    events = _events(tmp_path, "a.csv", "1")
    assert (
        _convo_here("build", "--env", "eu-west_2", "--config", config, events, cwd=tmp_path, monkeypatch=monkeypatch)
        == 0
    )
    assert (tmp_path / "warehouse" / "eu-west_2.duckdb").is_file()


@pytest.mark.parametrize(
    ("warehouse", "reason"),
    [
        ("a\nb.duckdb", "'a\\nb.duckdb': holds the control character U+000A; rename it"),
        ("a\x1bb.duckdb", "'a\\x1bb.duckdb': holds the control character U+001B; rename it"),
        (".", "is a directory; give the warehouse file's path"),
        ("events.csv/w.duckdb", "cannot create files in"),
    ],
)
def test_a_warehouse_path_convo_cannot_use_is_refused_in_one_line(tmp_path, warehouse, reason):
    events = _events(tmp_path, "events.csv", "1")
    result = _convo("build", "--config", _config(tmp_path), "--warehouse", warehouse, events, cwd=tmp_path)
    assert result.returncode == 2
    assert reason in _one_line_error(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["convo.toml", "events.csv", "expectations"]


@pytest.mark.parametrize("warehouse", ["md:w.duckdb", ":memory:"])
def test_a_warehouse_name_is_taken_literally_not_as_a_duckdb_protocol(tmp_path, warehouse, monkeypatch, capsys):
    events = _events(tmp_path, "events.csv", "1")
    here = dict(cwd=tmp_path, monkeypatch=monkeypatch)
    assert _convo_here("build", "--config", _config(tmp_path), "--warehouse", warehouse, events, **here) == 0
    capsys.readouterr()
    assert _convo_here("runs", "--config", _config(tmp_path), "--warehouse", warehouse, **here) == 0
    assert "success" in capsys.readouterr().out
    assert (tmp_path / warehouse).is_file()


def test_disk_full_is_recognised_through_duckdb_and_chained_errors():
    from convo.cli import disk_full

    assert disk_full(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    try:
        try:
            raise OSError(errno.ENOSPC, "disk")
        except OSError:
            raise RuntimeError("Failed to commit") from None
    except RuntimeError as exc:
        assert disk_full(exc)  # found through __context__ although the cause was suppressed
    assert disk_full(RuntimeError(f'Could not write file "x.wal": {os.strerror(errno.ENOSPC)}'))
    assert not disk_full(OSError(errno.EACCES, os.strerror(errno.EACCES)))


@contextlib.contextmanager
def _small_disk(mount_point, size="32m"):
    """A real file system of `size` (a tmpfs): needs root, as in CI and on this project's machines."""
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode:
        pytest.skip(f"NOT RUN: a disk-full test needs a small file system, and mount failed: {mounted.stderr}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def _fill(folder):
    """Write until the file system says it is full."""
    with (folder / "filler").open("wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * (1 << 20))
            f.flush()


def test_a_full_disk_fails_in_one_line_keeps_the_published_version_and_alerts(tmp_path):
    alert_file = tmp_path / "alert.json"
    config = _config(tmp_path, f'[environments.dev]\nnotify.command = "cat > {alert_file}"\n')
    with _small_disk(tmp_path / "disk") as disk:
        warehouse = disk / "dev.duckdb"
        # The version to keep is built in this process: only the failing build needs a command of its own.
        dev = convo_config.load("dev", config=config, warehouse=warehouse)
        assert runner.build(dev, [str(_events(tmp_path, "a.csv", "1"))]).status == "success"
        before = snapshot(warehouse)
        _fill(disk)
        result = _convo(
            "build", "--config", config, "--warehouse", warehouse, _events(tmp_path, "b.csv", "2"), cwd=tmp_path
        )
        assert result.returncode == 1
        error = _one_line_error(result)
        assert error.startswith("convo: the disk is full: ") and "the published version is as it was" in error
        assert snapshot(warehouse) == before
        alert = json.loads(alert_file.read_text())
        assert alert["status"] == "failed" and os.strerror(errno.ENOSPC) in alert["message"]
