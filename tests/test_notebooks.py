"""The pipeline notebooks: nbval regression on the sample data, and `convo run` with real kernels,
run again with nothing new (reports reused).

Every test works in a fresh sample project (a copy of the config, seeds and expectations with an
empty warehouse) and runs real processes: pytest + nbval, papermill kernels, `convo run`.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import duckdb
import nbformat
import pytest
from bs4 import BeautifulSoup

from convo.reports.notebooks import discover, execute_notebook
from convo.reports.reuse import METADATA_KEY
from notebook_references import REFERENCE_DIR, build_sample, kernel_environment, sample_project, stale
from test_permissions import owner_only_violations

ROOT = Path(__file__).resolve().parents[1]
CONVO = str(ROOT / ".venv" / "bin" / "convo")
REFERENCES = sorted((ROOT / REFERENCE_DIR).glob("*.ipynb"))
REFRESH = ".venv/bin/python tools/notebook_references.py"
NAMES = [p.stem for p in discover(ROOT / "notebooks")]

pytestmark = pytest.mark.slow


def _history(warehouse: Path) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(
            "SELECT run_id, command, status, message, started_at FROM convo_meta.runs ORDER BY run_id"
        ).fetchall()
    finally:
        con.close()


# -- nbval ------------------------------------------------------------------------------------
# A real change to a model: the time between two events gains an hour. As a sitecustomize on
# PYTHONPATH it is imported by every Python process of the nbval run, kernels included, before
# the models import the function.
CHANGED_MODEL = """
import convo.models.functions as functions

_seconds_between = functions.seconds_between
functions.seconds_between = lambda start, end: _seconds_between(start, end) + 3600
"""


def start_nbval(project: Path, references: list[Path], extra_env: dict | None = None) -> subprocess.Popen:
    """`pytest --nbval` on copies of `references` in `project`, in the background, once the sample
    is built there (`extra_env` applies to the build as to the kernels)."""
    build_sample(project, extra_env)
    for ref in references:
        shutil.copy(ref, project / "notebooks" / ref.name)
    with open(project / "nbval.out", "w") as output:  # a file, not a pipe: nobody reads it while it runs
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "--nbval",
                "--nbval-current-env",
                "-p",
                "no:cacheprovider",
                "-q",
                "--color=no",
                f"--junitxml={project / 'nbval.xml'}",
                *(f"notebooks/{r.name}" for r in references),
            ],
            cwd=project,
            env={**kernel_environment(project), **(extra_env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def nbval_cells(project: Path, process: subprocess.Popen) -> dict[str, list]:
    """Wait for an nbval run: {notebook: [(cell, failure text or None)]}."""
    process.wait(timeout=900)
    report = project / "nbval.xml"
    assert report.exists(), f"nbval did not run:\n{(project / 'nbval.out').read_text()}"
    cells: dict[str, list] = {}
    for case in ET.parse(report).iter("testcase"):  # classname "notebooks.NN_name.ipynb", name "Cell K"
        notebook = case.get("classname").removeprefix("notebooks.").removesuffix(".ipynb")
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        cells.setdefault(notebook, []).append((case.get("name"), None if problem is None else problem.text))
    return cells


def test_references_match_the_notebooks():
    """nbval runs the reference .ipynb, so a reference that lags its .py would test stale code."""
    assert REFERENCES, f"no reference notebooks in {REFERENCE_DIR}; create them with `{REFRESH}`"
    problems = stale(ROOT)
    assert not problems, "\n".join(problems) + f"\nregenerate the references with `{REFRESH}` and review the diff"


@pytest.mark.parametrize("reference", REFERENCES, ids=lambda p: p.stem)
def test_notebook_outputs_match_the_reference(jobs, reference):
    cells = jobs.plain.get(reference.stem)
    assert cells, f"nbval collected no cell of {reference.name}"
    failed = [f"{cell}: {text}" for cell, text in cells if text is not None]
    assert not failed, (
        f"{len(failed)} of {len(cells)} cells of {reference.name} differ from the reference"
        f" (intended? regenerate with `{REFRESH}`):\n" + "\n".join(failed)
    )


def test_a_changed_model_definition_fails_the_regression_run(jobs):
    cells = jobs.changed
    assert cells["10_ingest"] and all(text is None for _, text in cells["10_ingest"])  # staging is unchanged
    differing = [text for _, text in cells["30_facts"] if text is not None]
    assert differing and all("Cell outputs differ" in text for text in differing)
    assert any("reporting.resolution(environment)" in text for text in differing)  # the cell's input


# -- convo run --------------------------------------------------------------------------------
USUAL_UMASK = 0o022  # what the commands inherit here: convo.toml's default (077) must win over it


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@dataclass
class PipelineRun:
    project: Path
    command: list[str]
    returncode: int
    stdout: str
    stderr: str  # the progress lines
    second: subprocess.CompletedProcess  # a run started while the first one was going
    first_running_after_second: bool


def start_pipeline_run(project: Path, run_date: str) -> tuple[list[str], subprocess.Popen]:
    """`convo run` of the project's real notebooks, in the background."""
    for source in (ROOT / "notebooks").glob("*.py"):
        shutil.copy(source, project / "notebooks" / source.name)
    command = [CONVO, "run", "--config", str(project / "convo.toml"), "--env", "dev", "--date", run_date]
    previous = os.umask(USUAL_UMASK)
    try:
        with open(project / "run.out", "w") as out, open(project / "run.err", "w") as err:
            return command, subprocess.Popen(command, cwd=project, stdout=out, stderr=err)
    finally:
        os.umask(previous)


def overlap_and_finish(project: Path, command: list[str], first: subprocess.Popen) -> PipelineRun:
    """Once the first run holds its lock, start the same run again; then wait for the first."""
    lock = project / "warehouse" / "dev.duckdb.lock"
    try:
        _wait_for(lambda: lock.exists() and "convo run" in lock.read_text(), 120, "the first run's lock")
        second = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=120)
        still_running = first.poll() is None
        first.wait(timeout=900)
    finally:
        first.kill()
    return PipelineRun(
        project,
        command,
        first.returncode,
        (project / "run.out").read_text(),
        (project / "run.err").read_text(),
        second,
        still_running,
    )


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> SimpleNamespace:
    """Everything that runs the real notebooks, started together so that it shares the CPUs: a
    `convo run` (with a second, overlapping one), and two nbval runs: as the code is, and with
    CHANGED_MODEL. Each works in its own fresh sample project."""
    patch = tmp_path_factory.mktemp("changed-model")
    (patch / "sitecustomize.py").write_text(CHANGED_MODEL)
    pipeline = sample_project(ROOT, tmp_path_factory.mktemp("convo-run"))
    command, first = start_pipeline_run(pipeline, "2024-04-20")
    plain = sample_project(ROOT, tmp_path_factory.mktemp("nbval"))
    changed = sample_project(ROOT, tmp_path_factory.mktemp("nbval-changed"))
    changed_notebooks = [ROOT / REFERENCE_DIR / "10_ingest.ipynb", ROOT / REFERENCE_DIR / "30_facts.ipynb"]
    nbval = {
        "plain": (plain, start_nbval(plain, REFERENCES)),
        "changed": (changed, start_nbval(changed, changed_notebooks, {"PYTHONPATH": str(patch)})),
    }
    try:
        return SimpleNamespace(
            pipeline=overlap_and_finish(pipeline, command, first),
            **{name: nbval_cells(project, process) for name, (project, process) in nbval.items()},
        )
    finally:
        for _, process in nbval.values():
            process.kill()  # only if something above failed: they have finished otherwise


def test_convo_run_executes_every_notebook_into_the_report_folder(jobs):
    run = jobs.pipeline
    assert run.returncode == 0, run.stderr
    assert f"[1/{len(NAMES)}] 10_ingest cell 4/" in run.stderr  # progress: notebook, cell, elapsed time
    assert f"[{len(NAMES)}/{len(NAMES)}] {NAMES[-1]}: done in" in run.stderr
    folder = (run.project / "reports" / "dev" / "latest").resolve()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{n}.{ext}" for n in NAMES for ext in ("html", "code.html", "ipynb", "reads")] + ["run.log"]
    )
    for name in NAMES:  # viewable offline: no script at all, charts embedded
        assert "<script" not in (folder / f"{name}.html").read_text()
        assert "<script" not in (folder / f"{name}.code.html").read_text()
    assert "data:image/png;base64" in (folder / "30_facts.html").read_text()
    quality = nbformat.read(folder / "40_data_quality.ipynb", as_version=4)  # the --date reached the notebook
    assert "6 day(s) before 2024-04-20, the day it is measured at" in json.dumps(quality.cells[-1].outputs)
    assert "measured at the end of the run date, 2024-04-20" in json.dumps(quality.cells[-2].outputs)

    warehouse = run.project / "warehouse" / "dev.duckdb"
    (record,) = _history(warehouse)  # one run, one record: the build is the run's own
    assert record[1] == "run --date 2024-04-20" and record[2] == "success" and str(folder) in record[3]
    assert f"run {record[0]}: success" in run.stdout
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute("SELECT count(*) FROM fact_conversation_lifecycle").fetchone() == (34,)
    assert con.execute("SELECT published_version FROM convo_meta.runs").fetchone() == (record[0],)
    assert con.execute(
        "SELECT action, rows_read FROM convo_meta.run_files WHERE run_id = ?", [record[0]]
    ).fetchall() == [("ingested", 378)]
    con.close()
    ingest = nbformat.read(folder / "10_ingest.ipynb", as_version=4)  # shows this run's build, by its id
    assert f"run_id = {record[0]}" in ingest.cells[2].source  # papermill's injected parameters
    assert "**378** rows: **373** staged, **3** rejected" in json.dumps(ingest.cells[4].outputs)


CODE = ".jp-CodeCell .jp-InputArea, .jp-InputPrompt"  # a code cell's source, as nbconvert's lab template writes it
MISSING = re.compile(r"\b(NaN|None|NaT|nan|<NA>)\b")


def test_the_readers_html_of_every_report_has_no_code_and_no_missing_value_text(jobs):
    folder = (jobs.pipeline.project / "reports" / "dev" / "latest").resolve()
    for name in NAMES:
        readers = BeautifulSoup((folder / f"{name}.html").read_text(), "html.parser")
        assert not readers.select(CODE), f"{name}.html shows code"
        text = readers.get_text(" ")
        assert not MISSING.findall(text), (name, MISSING.findall(text))
        assert "import" not in text.split() and "reporting." not in text, name
        engineers = BeautifulSoup((folder / f"{name}.code.html").read_text(), "html.parser")
        assert engineers.select(".jp-CodeCell .jp-InputArea"), f"{name}.code.html lost its code"
        first_output = readers.select_one(".jp-OutputArea-output")  # after the title: the answer, in short
        assert first_output.get_text(" ").strip().startswith(("In short", "Between")), name


def test_every_table_a_report_queries_is_a_lineage_edge(jobs):
    """The lineage's notebook edges are the tables each notebook's queries named (recorded while it
    ran, through whichever module queried them): here the contact-reason report's, worked out from
    convo/contact_reasons.py, and every recorded table appears as "Read by" that notebook."""
    project = jobs.pipeline.project
    folder = (project / "reports" / "dev" / "latest").resolve()
    recorded = {p.stem: set(p.read_text().split()) for p in folder.glob("*.reads")}
    assert recorded["50_contact_reasons"] == {
        "int_conversation_tags",
        "fact_conversation_lifecycle",
        "dim_tag",
        "dim_date",
    }
    assert {"fact_conversation_lifecycle", "fact_conversation_events", "dim_date"} <= recorded["30_facts"]
    assert {"ingested_files", "rejected_conversation_events"} <= recorded["40_data_quality"]
    rows = (
        BeautifulSoup((project / "reports" / "site" / "lineage.html").read_text(), "html.parser")
        .find("table")
        .find("tbody")
        .find_all("tr")
    )
    read_by = {tr.find_all("td")[0].get_text(strip=True): tr.find_all("td")[3].get_text(" ", strip=True) for tr in rows}
    documented = set(read_by)
    for notebook, tables in recorded.items():
        for table in tables & documented:
            assert f"{notebook}.py" in read_by[table], (table, notebook)
    readers = {t for t, cell in read_by.items() if "50_contact_reasons.py" in cell}
    assert readers == recorded["50_contact_reasons"], "no edge from words in the notebook's text"


def _convo_in(project: Path, command: str) -> subprocess.CompletedProcess:
    """`convo COMMAND` on the dev environment of `project`, in a process of its own."""
    return subprocess.run(
        [CONVO, command, "--config", str(project / "convo.toml"), "--env", "dev"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_what_a_run_and_a_check_make_is_the_owners_only(jobs, tmp_path):
    """The warehouse, logs, reports, Data Docs and site, though the commands inherit a usual umask.
    The check runs on a copy of the run's project (modes kept): it adds a run to the history that
    the other tests of the run do not expect."""
    project = shutil.copytree(jobs.pipeline.project, tmp_path / "project", symlinks=True)
    previous = os.umask(USUAL_UMASK)
    try:
        checked = _convo_in(project, "check")
    finally:
        os.umask(previous)
    assert checked.returncode == 0, checked.stderr
    assert owner_only_violations(project) == {}


def test_the_site_states_the_run_as_convo_runs_does(jobs):
    project = jobs.pipeline.project
    listed = _convo_in(project, "runs").stdout.splitlines()
    run_line = next(line for line in listed if " run --date" in line)
    run_id, status, version, _, day, time_of_day, seconds = run_line.split()[:7]
    assert status == "success"
    site = project / "reports" / "site"
    first = BeautifulSoup((site / "runs.html").read_text(), "html.parser").find("table").find("tbody").find("tr")
    cells = [td.get_text(" ", strip=True) for td in first.find_all("td")]
    assert (cells[0], cells[2], cells[3], cells[5], cells[6]) == (
        run_id,
        "success",
        version,
        f"{day} {time_of_day} UTC",
        seconds,
    )
    home = " ".join(BeautifulSoup((site / "index.html").read_text(), "html.parser").get_text(" ").split())
    assert f"Last run: run {run_id} (run --date 2024-04-20), success , started {day} {time_of_day} UTC" in home
    assert "running" not in home


def test_a_second_run_fails_fast_while_one_is_going(jobs):
    second = jobs.pipeline.second
    assert jobs.pipeline.first_running_after_second, "the second run waited for the first instead of failing"
    assert second.returncode == 3
    lock = jobs.pipeline.project / "warehouse" / "dev.duckdb.lock"  # the environment's: builds, checks, runs
    assert "convo: environment 'dev' is busy: `convo run --date 2024-04-20` (pid" in second.stderr
    assert str(lock) in second.stderr
    assert len(_history(jobs.pipeline.project / "warehouse" / "dev.duckdb")) == 1  # the second left no trace


def test_a_failing_cell_fails_the_run_keeps_the_notebook_and_alerts(tmp_path):
    """Reports are whatever NN_name.py files the project has; the second one here fails. They run
    side by side and none depends on another, so the third runs all the same."""
    project = sample_project(ROOT, tmp_path / "project")
    alert = tmp_path / "alert.json"
    (project / "convo.toml").write_text(f'[environments.dev]\nnotify.command = "cat > {alert}"\n')
    steps = {
        "10_first": '# %% tags=["parameters"]\nrun_date = None\n\n# %%\nprint("first step, run date", run_date)\n',
        "20_broken": '# %%\nprint("about to fail")\n\n# %%\nraise RuntimeError("deliberate failure")\n',
        "30_independent": '# %%\nprint("runs all the same")\n',
    }
    for name, text in steps.items():
        (project / "notebooks" / f"{name}.py").write_text(text)

    result = subprocess.run(  # from outside the project, an input named from there
        [CONVO, "run", "--env", "dev", "--date", "2024-05-01", "project/seeds/raw_conversation_events.csv"],
        cwd=tmp_path,
        env={**os.environ, "CONVO_CONFIG": str(project / "convo.toml")},
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 1, result.stderr
    assert "20_broken failed in cell [2]: RuntimeError: deliberate failure" in result.stderr
    (folder,) = (project / "reports" / "dev").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == [
        "10_first.code.html",
        "10_first.html",
        "10_first.ipynb",
        "10_first.reads",
        "20_broken.code.html",
        "20_broken.html",
        "20_broken.ipynb",
        "20_broken.reads",
        "30_independent.code.html",
        "30_independent.html",
        "30_independent.ipynb",
        "30_independent.reads",
        "run.log",
    ]
    first = nbformat.read(folder / "10_first.ipynb", as_version=4)
    assert first.cells[-1].outputs[0].text == "first step, run date 2024-05-01\n"
    broken = nbformat.read(folder / "20_broken.ipynb", as_version=4)
    assert broken.metadata.papermill.exception is True
    assert any(
        o.output_type == "error" and o.evalue == "deliberate failure"
        for c in broken.cells
        for o in c.get("outputs", [])
    )
    assert "deliberate failure" in (folder / "20_broken.html").read_text()
    independent = nbformat.read(folder / "30_independent.ipynb", as_version=4)
    assert independent.cells[-1].outputs[0].text == "runs all the same\n"
    assert not (project / "reports" / "dev" / "latest").exists()

    ((_, command, status, message, _),) = _history(project / "warehouse" / "dev.duckdb")
    assert (command, status) == ("run --date 2024-05-01 seeds/raw_conversation_events.csv", "failed")
    con = duckdb.connect(str(project / "warehouse" / "dev.duckdb"), read_only=True)
    assert con.execute("SELECT action, rows_read FROM convo_meta.run_files").fetchall() == [("ingested", 378)]
    con.close()
    assert message.startswith("20_broken failed in cell [2]: RuntimeError: deliberate failure")
    sent = json.loads(alert.read_text())
    assert sent["status"] == "failed" and sent["command"] == command and sent["report"] == str(folder)


def test_a_build_that_fails_its_audit_runs_no_notebook_and_alerts(tmp_path):
    """`convo run` builds first: a failed audit publishes nothing, so no report describes it; the
    run's one record says which checks failed, and the alert carries the report folder."""
    project = sample_project(ROOT, tmp_path / "project")
    for source in (ROOT / "notebooks").glob("*.py"):
        shutil.copy(source, project / "notebooks" / source.name)
    alert = tmp_path / "alert.json"
    (project / "convo.toml").write_text(
        f'[environments.dev]\ninputs = ["seeds/raw_conversation_events.csv"]\nnotify.command = "cat > {alert}"\n'
    )
    suite = project / "expectations" / "dim_user.json"  # edited by hand: the audit refuses to trust it
    edited = json.loads(suite.read_text())
    edited["expectations"].pop()
    suite.write_text(json.dumps(edited))

    result = subprocess.run(
        [CONVO, "run", "--env", "dev"],
        cwd=project,
        env={**os.environ, "CONVO_CONFIG": str(project / "convo.toml")},
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert result.returncode == 1, result.stderr
    assert "[error] dim_user: expectation suite is up to date" in result.stdout
    assert "failed (audit failed, nothing published: dim_user: expectation suite is up to date" in result.stdout
    (folder,) = (project / "reports" / "dev").iterdir()
    assert [p.name for p in folder.iterdir()] == ["run.log"]  # no notebook ran
    assert "audit failed, nothing published" in (folder / "run.log").read_text()
    ((_, command, status, message, _),) = _history(project / "warehouse" / "dev.duckdb")
    assert (command, status) == ("run", "failed") and message.startswith("audit failed, nothing published")
    con = duckdb.connect(str(project / "warehouse" / "dev.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM convo_meta.versions WHERE state = 'published'").fetchone() == (0,)
    con.close()
    sent = json.loads(alert.read_text())
    assert sent["status"] == "failed" and sent["report"] == str(folder)
    assert "expectation suite is up to date" in [c["check_name"] for c in sent["failed_checks"]]


# -- a second run with nothing new: reports reused ------------------------------------------------
# The reports whose inputs are unchanged are reused, the one that shows the run is executed, and
# a reused report is what executing it again gives (real kernels). Last in this file: the second
# run goes into the pipeline's own project (a copy elsewhere would be another project: its reports
# show the files' paths relative to it), and the tests above read that project as the first run left it.
SHOWS_THE_RUN = "10_ingest"  # declares run_id
AUDIT_STARTED = "audit process started"


@pytest.fixture(scope="module")
def runs(jobs) -> SimpleNamespace:
    """The pipeline's run, then the same command again in its project, with nothing new."""
    project = jobs.pipeline.project
    again = subprocess.run(jobs.pipeline.command, cwd=project, capture_output=True, text=True, timeout=900)
    reports = project / "reports" / "dev"
    folders = sorted(p for p in reports.iterdir() if not p.is_symlink())
    return SimpleNamespace(
        project=project, fresh=jobs.pipeline, again=again, folders=folders, latest=reports / "latest"
    )


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
    assert "Last run: run 2 (run --date 2024-04-20), success" in home
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
