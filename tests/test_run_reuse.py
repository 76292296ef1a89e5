"""`convo run` with nothing new to load: the reports whose inputs are unchanged are reused, the
one that shows the run is executed, and a reused report is what executing it again gives. Real
runs in a fresh sample project: two `convo run`s one after the other, then real kernels."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from bs4 import BeautifulSoup

from convo.reports.notebooks import discover, execute_notebook
from convo.reports.reuse import METADATA_KEY
from notebook_references import sample_project

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CONVO = str(ROOT / ".venv" / "bin" / "convo")
NAMES = [p.stem for p in discover(ROOT / "notebooks")]
SHOWS_THE_RUN = "10_ingest"  # declares run_id
AUDIT_STARTED = "audit process started"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> SimpleNamespace:
    project = sample_project(ROOT, tmp_path_factory.mktemp("reuse"))
    for source in (ROOT / "notebooks").glob("*.py"):
        (project / "notebooks").mkdir(exist_ok=True)
        (project / "notebooks" / source.name).write_text(source.read_text())
    command = [CONVO, "run", "--config", str(project / "convo.toml"), "--env", "dev", "--date", "2024-04-15"]
    fresh = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=900)
    again = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=900)
    reports = project / "reports" / "dev"
    folders = sorted(p for p in reports.iterdir() if not p.is_symlink())
    return SimpleNamespace(project=project, fresh=fresh, again=again, folders=folders, latest=reports / "latest")


def test_a_run_with_nothing_new_reuses_the_unchanged_reports_and_executes_the_one_showing_the_run(runs):
    assert runs.fresh.returncode == 0, runs.fresh.stderr
    assert runs.again.returncode == 0, runs.again.stderr
    assert "nothing new to load" in runs.again.stderr
    earlier, latest = runs.folders
    assert runs.latest.resolve() == latest
    for name in NAMES:
        assert f"{name}: reused" not in runs.fresh.stderr  # a new version: every report runs
        if name == SHOWS_THE_RUN:
            assert f"{name}: done in" in runs.again.stderr and f"{name}: reused" not in runs.again.stderr
            continue
        assert (
            f"{name}: reused from reports/dev/{earlier.name}: its inputs are unchanged (published version 1,"
            in runs.again.stderr
        )
        assert f"{name} cell " not in runs.again.stderr  # no cell of it ran
        for suffix in (".ipynb", ".html", ".code.html", ".reads"):
            assert (latest / f"{name}{suffix}").read_bytes() == (earlier / f"{name}{suffix}").read_bytes()
    ingest = nbformat.read(latest / f"{SHOWS_THE_RUN}.ipynb", as_version=4)
    assert "run_id = 2" in ingest.cells[2].source  # this run's, executed again
    assert METADATA_KEY not in ingest.metadata


def test_the_audit_process_starts_only_when_the_build_has_something_new(runs):
    assert AUDIT_STARTED in runs.fresh.stderr
    assert AUDIT_STARTED not in runs.again.stderr


def test_the_incremental_site_states_the_second_run(runs):
    home = " ".join(
        BeautifulSoup((runs.project / "reports" / "site" / "index.html").read_text(), "html.parser")
        .get_text(" ")
        .split()
    )
    assert "Last run: run 2 (run --date 2024-04-15), success" in home
    assert "site: pages written" in runs.again.stderr and "sources changed" in runs.again.stderr


def _comparable(nb) -> dict:
    """An executed notebook without what differs between two executions of it: papermill's times
    and paths, the execution timestamps, and the inputs a run records for reuse."""
    metadata = {k: v for k, v in nb.metadata.items() if k not in ("papermill", METADATA_KEY)}
    cells = [
        {
            "cell_type": c.cell_type,
            "source": c.source,
            "outputs": c.get("outputs"),
            "execution_count": c.get("execution_count"),
            "metadata": {k: v for k, v in c.metadata.items() if k not in ("papermill", "execution")},
        }
        for c in nb.cells
    ]
    return {"metadata": metadata, "cells": cells}


def _parameters_as_given(nb) -> dict:
    """The parameters papermill gave the notebook, in the order of its injected cell (the metadata
    holds them sorted)."""
    (injected,) = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    names = [line.split(" = ")[0] for line in injected.source.splitlines()[1:]]
    return {name: nb.metadata.papermill.parameters[name] for name in names}


def test_a_reused_report_is_what_executing_the_notebook_again_gives(runs, tmp_path):
    latest = runs.latest.resolve()
    for name in NAMES:
        if name == SHOWS_THE_RUN:
            continue
        reused = nbformat.read(latest / f"{name}.ipynb", as_version=4)
        target = tmp_path / f"{name}.ipynb"
        execute_notebook(
            runs.project / "notebooks" / f"{name}.py",
            target,
            _parameters_as_given(reused),
            cwd=runs.project,
            label=name,
            run_started=time.perf_counter(),
        )
        assert _comparable(nbformat.read(target, as_version=4)) == _comparable(reused), name
