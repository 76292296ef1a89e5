"""What convo creates (warehouse, logs, reports, Data Docs, site) is the owner's only,
unless convo.toml says otherwise."""

import os
import stat
import subprocess

import pytest

from conftest import ROOT, write_events
from convo import config

CONVO = str(ROOT / ".venv" / "bin" / "convo")


def _project(tmp_path, umask_line: str):
    """A project in `tmp_path` to build in: the checkout's convo.toml with `umask_line` in place of
    its umask, and its seeds and suites."""
    text = (ROOT / "convo.toml").read_text().replace('umask = "077"\n', umask_line + "\n")
    assert umask_line in text
    (tmp_path / "convo.toml").write_text(text)
    for name in ("seeds", "expectations"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def _modes(*folders):
    """{path: permission bits} of everything under `folders` that convo made (not symlinks)."""
    found = {}
    for folder in folders:
        for path in [folder, *folder.rglob("*")]:
            if not path.is_symlink():
                found[path] = stat.S_IMODE(path.stat().st_mode)
    return found


def _convo(project, *args):
    result = subprocess.run(
        [CONVO, *args],
        capture_output=True,
        text=True,
        cwd=project,
        env={k: v for k, v in os.environ.items() if k != "CONVO_CONFIG"},
    )
    assert result.returncode == 0, result.stderr
    return result


def owner_only_violations(project) -> dict[str, str]:
    """What convo made under the project's warehouse and reports folders that is not the owner's
    only (files 0600, folders 0700), with its mode; the run and check that made them are in
    test_notebooks.py, on the `convo run` its tests share."""
    modes = _modes(project / "warehouse", project / "reports")
    kinds = {p.suffix for p in modes if p.is_file()}
    assert {".duckdb", ".lock", ".log", ".ipynb", ".html", ".css"} <= kinds  # everything was made
    assert (project / "reports" / "site" / "index.html") in modes
    assert (project / "reports" / "dev" / "data_docs" / "index.html") in modes
    return {str(p.relative_to(project)): oct(m) for p, m in modes.items() if m != (0o700 if p.is_dir() else 0o600)}


def test_the_umask_setting_shares_them_as_told(tmp_path):
    project = _project(tmp_path, 'umask = "027"')
    events = write_events(
        tmp_path / "events" / "a.csv",
        [
            ("2024-05-02 9:00:00", "1", "501", "", "customer_message_received", "hi"),
            ("2024-05-02 9:05:00", "1", "501", "71", "status_changed_to", "Closed"),
        ],
    )
    _convo(project, "build", str(events))
    modes = _modes(project / "warehouse")
    assert modes and all(m == (0o750 if p.is_dir() else 0o640) for p, m in modes.items())


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("777", "would take read or write access from the owner"),
        ("0200", "would take read or write access from the owner"),
        ("u=rwx", "is not three octal digits"),
        ("0o77", "is not three octal"),
    ],
)
def test_a_umask_that_is_not_octal_or_locks_out_the_owner_is_refused(tmp_path, value, why):
    (tmp_path / "convo.toml").write_text(f'[defaults]\numask = "{value}"\n[environments.dev]\n')
    with pytest.raises(config.ConfigError, match=why):
        config.load("dev", config=tmp_path / "convo.toml")


def test_the_default_umask_is_the_owners_only(tmp_path):
    (tmp_path / "convo.toml").write_text("[environments.dev]\n")
    assert config.load("dev", config=tmp_path / "convo.toml").umask == 0o077
