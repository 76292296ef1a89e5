"""`convo run`: the pipeline's notebooks executed in order with papermill, one report folder per run.

Each `notebooks/NN_name.py` (jupytext percent format, the source of truth) is one step, run in
the order of its number, so adding a step is adding a file. The first notebook runs the build;
the others report on the version it published. A run writes:

    reports/<env>/<run_id>/NN_name.ipynb   the executed notebook (kept, with the error, if a cell fails)
    reports/<env>/<run_id>/NN_name.html    for readers: prose and outputs, no code; self-contained, nothing
                                           from the network
    reports/<env>/<run_id>/NN_name.code.html  every cell with its code, for engineers
    reports/<env>/<run_id>/NN_name.reads   the tables the notebook queried (convo/reads.py), for the lineage
    reports/<env>/<run_id>/run.log         the progress lines
    reports/<env>/latest -> <run_id>       the last run whose notebooks all succeeded

<run_id> is the run's UTC start time (20261127T021500Z): known before the warehouse is opened,
so a run that fails at its first cell still gets its folder; sorted by time; unique, because two
runs of one environment cannot overlap. The run's record in the run history (command "run ...")
names the folder.

Concurrency. A run holds `<warehouse>.run.lock` from start to end, so a second run of the same
environment fails at once instead of interleaving. The build in the first notebook takes the
environment's lock itself; as soon as it has finished, the run takes that lock and keeps it
until the end, so no other build, check or rollback can change the published version while
the later notebooks report on it.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from convo import notify, provenance
from convo.config import Environment, find_config
from convo.engine.state import Run, RunLog
from convo.engine.warehouse import Warehouse
from convo.files import created_with
from convo.lock import EnvironmentBusy, exclusive
from convo.reports import reads, report_view
from convo.shown_paths import project_path

log = logging.getLogger(__name__)
# papermill logs each notebook's paths at INFO; the progress lines below say more, once.
logging.getLogger("papermill").setLevel(logging.WARNING)

NOTEBOOKS_DIR = "notebooks"
KERNEL = "python3"  # ipykernel's own kernel: the Python of the process that runs `convo run`
KERNELSPEC = {"name": KERNEL, "display_name": "Python 3 (ipykernel)", "language": "python"}
_NOTEBOOK_NAME = re.compile(r"^(\d+)_\w+\.py$")


@dataclass
class RunReport:
    folder: Path
    record: Run | None  # the run's row in the history (None if the environment could not be recorded)
    failure: str | None  # why the run failed; None if it succeeded

    @property
    def ok(self) -> bool:
        return self.failure is None


# -- notebooks --------------------------------------------------------------------------------
def discover(folder: Path) -> list[Path]:
    """The notebooks of a folder (`NN_name.py`), in the order of their number."""
    found = [p for p in folder.glob("*.py") if _NOTEBOOK_NAME.match(p.name)]
    return sorted(found, key=lambda p: (int(_NOTEBOOK_NAME.match(p.name)[1]), p.name))


def read_notebook(source: Path):
    """A jupytext percent file as a notebook for the project's kernel, unpaired: an executed copy
    never syncs back to the source."""
    import jupytext  # slow to import: only when notebooks are about to run

    nb = jupytext.read(source)
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = KERNELSPEC  # whatever kernel the file names, it runs in this Python
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"  # jupytext makes random ones: stable ids keep the references' diffs to what changed
    return nb


class _Progress:
    """Log lines saying which notebook and cell is running, and for how long."""

    def __init__(self, label: str, code_cells: int, run_started: float):
        self.label, self.code_cells, self.run_started = label, code_cells, run_started
        self.started = time.perf_counter()
        self.cell = 0

    def cell_started(self, cell, cell_index: int) -> None:
        if cell.cell_type != "code":
            return
        self.cell += 1
        first_line = next((line for line in cell.source.splitlines() if line.strip()), "")[:70]
        now = time.perf_counter()
        log.info(
            "%s cell %d/%d (%.1f s in notebook, %.1f s in run): %s",
            self.label,
            self.cell,
            self.code_cells,
            now - self.started,
            now - self.run_started,
            first_line,
        )


def execute_notebook(
    source: Path, target: Path, parameters: dict, *, cwd: Path, label: str, run_started: float
) -> float:
    """Execute one notebook with papermill into `target`; returns seconds. Raises if a cell fails."""
    import nbformat
    import papermill

    nb = read_notebook(source)
    nbformat.write(nb, target)  # papermill reads and inspects notebooks from files
    declared = papermill.inspect_notebook(target)
    # Only the parameters the notebook declares: each step takes what it needs.
    passed = {k: v for k, v in parameters.items() if k in declared}
    code_cells = sum(c.cell_type == "code" for c in nb.cells) + bool(passed)  # + the injected-parameters cell
    progress = _Progress(label, code_cells, run_started)
    t0 = time.perf_counter()
    reads_file = target.with_suffix(reads.SUFFIX)
    reads_file.write_text("", encoding="utf-8")  # a notebook that reads nothing still says so
    with _environment_variable(reads.VARIABLE, str(reads_file.resolve())):  # the kernel inherits it
        papermill.execute_notebook(
            target,
            target,
            parameters=passed,
            kernel_name=KERNEL,
            cwd=str(cwd),
            progress_bar=False,
            on_cell_start=progress.cell_started,
        )
    return time.perf_counter() - t0


@contextlib.contextmanager
def _environment_variable(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


# Lab's template without its three network scripts (require.js, MathJax, Mermaid), which these
# notebooks do not use: the page is styled by inline CSS and its charts are embedded PNGs, with
# the chart's title as their alternative text (Lab's template ignores it).
_OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block html_head_js_requirejs %}{% endblock %}
{% block html_head_js_mathjax %}{% endblock %}
{% block html_head_js_mermaidjs %}{% endblock %}
{% block data_png scoped %}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
<img src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}"
 alt="{{ ((output | get_metadata('alt', 'image/png')) or 'chart') | escape_html }}">
</div>
{% endblock data_png %}
"""


def render_html(notebook: Path) -> Path:
    """Two HTML copies of an executed notebook next to it, viewable with no network: `NN_name.html`
    for readers (prose and outputs, no code: `report_view.for_readers`) and `NN_name.code.html`
    with every cell, for engineers. Returns the readers' copy."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    executed = nbformat.read(notebook, as_version=4)
    loader = jinja2.DictLoader({"convo_offline.html.j2": _OFFLINE_TEMPLATE})
    engineers = HTMLExporter(template_name="lab", extra_loaders=[loader], template_file="convo_offline.html.j2")
    readers = HTMLExporter(
        template_name="lab",
        extra_loaders=[loader],
        template_file="convo_offline.html.j2",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    code_body, _ = engineers.from_notebook_node(executed)
    notebook.with_suffix(".code.html").write_text(code_body, encoding="utf-8")
    body, _ = readers.from_notebook_node(nbformat.from_dict(report_view.for_readers(executed)))
    html = notebook.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def _first_line(text: str) -> str:
    """What the history, the alert and the exit message say of an error (the notebook or run.log has the rest)."""
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def _failure(name: str, exc: Exception) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return f"{name} failed in cell [{exc.exec_count}]: {exc.ename}: {_first_line(exc.evalue)}"
    return f"{name} failed: {type(exc).__name__}: {_first_line(str(exc))}"


# -- the run ----------------------------------------------------------------------------------
@dataclass
class _Plan:
    """One run: its notebooks, where they write, what they are given."""

    env: Environment
    sources: list[Path]
    folder: Path
    parameters: dict
    command: str
    started: datetime.datetime
    clock: float  # time.perf_counter() at the start

    def run_notebooks(self, positions: range) -> str | None:
        """Execute the notebooks at `positions` in order, each rendered to HTML; stop at the first failure."""
        for i in positions:
            source = self.sources[i]
            label = f"[{i + 1}/{len(self.sources)}] {source.stem}"
            target = self.folder / f"{source.stem}.ipynb"
            log.info("%s: started", label)
            try:
                seconds = execute_notebook(
                    source, target, self.parameters, cwd=self.env.root, label=label, run_started=self.clock
                )
            except Exception as exc:  # the notebook, as far as it ran, is kept and rendered with its error
                failure = _failure(source.stem, exc)
                log.error("%s: %s", label, failure)
                if target.exists():
                    render_html(target)
                return failure
            render_html(target)
            log.info("%s: done in %.1f s -> %s", label, seconds, target.with_suffix(".html"))
        return None


def _run_lock(env: Environment) -> Path:
    """The path whose `.lock` sibling serialises runs (the environment's own lock is the build's)."""
    return env.warehouse.with_name(env.warehouse.name + ".run")


def _default_run_date(env: Environment, started: datetime.datetime) -> datetime.date | None:
    """The run date when `--date` is not given: today (UTC) for an environment that declares its data
    live (`checks.freshness_max_age_hours`); otherwise none, and the reports measure ages and
    freshness at the end of the data's period: the bundled sample ends in 2024, and a backlog
    aged to today would say nothing."""
    return started.date() if env.checks.get("freshness_max_age_hours") is not None else None


def _command(inputs: list[str], full_refresh: bool, run_date: datetime.date | None) -> str:
    return (
        "run"
        + (f" --date {run_date}" if run_date else "")
        + (" --full-refresh" if full_refresh else "")
        + "".join(f" {p}" for p in inputs)
    )


def _open_record(env: Environment, command: str) -> Run:
    wh = Warehouse(env.warehouse, threads=env.threads, memory_limit=env.memory_limit)
    try:
        runs = RunLog(wh)
        record = runs.start(
            env.name, command, code=provenance.code_version(env.root), config=provenance.configuration(env)
        )
        record.published_version = runs.current_version() or None  # what the reports describe
        return record
    finally:
        wh.close()  # the notebooks open the file read-only, which a read-write connection would prevent


def _close_record(env: Environment, run: Run, started: datetime.datetime) -> None:
    wh = Warehouse(env.warehouse, threads=env.threads, memory_limit=env.memory_limit)
    try:
        runs = RunLog(wh)
        runs.finish(run)
        # RunLog.start stamped the time the row was written, after the build: the row could only
        # be written once the build had released the environment.
        runs.restamp_start(run.run_id, started)
    finally:
        wh.close()


def _finish(plan: _Plan, record: Run, failure: str | None) -> None:
    record.status = "failed" if failure else "success"
    record.message = f"{failure + '; ' if failure else ''}report: {plan.folder}"
    _close_record(plan.env, record, plan.started)


def _point_latest(folder: Path) -> None:
    """Re-point reports/<env>/latest at `folder` atomically (readers never see it missing)."""
    link = folder.parent / "latest"
    staging = folder.parent / f".latest-{os.getpid()}"
    staging.unlink(missing_ok=True)
    staging.symlink_to(folder.name, target_is_directory=True)
    os.replace(staging, link)


def _build_site(env: Environment) -> str | None:
    """Build the docs site if its module is there yet; returns why it failed, if it did."""
    try:
        from convo.site import build_site
    except ImportError as exc:
        log.warning("docs site not built: convo.site.build_site is not available yet (%s)", exc)
        return None
    try:
        log.info("docs site built: %s", build_site(env))
    except Exception as exc:
        log.exception("docs site failed")
        return f"docs site failed: {type(exc).__name__}: {_first_line(str(exc))}"
    return None


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[None]:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("convo").addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger("convo").removeHandler(handler)
        handler.close()


def _execute_and_record(plan: _Plan) -> RunReport:
    """The build notebook, then, holding the environment, the reports, `latest`, the site and the record."""
    failure = plan.run_notebooks(range(1))
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive(plan.env.warehouse, plan.env.name, plan.command))
        except EnvironmentBusy as exc:  # another command started in the moment the build let go
            return RunReport(plan.folder, None, failure or f"reports not run: {exc}")
        record = _open_record(plan.env, plan.command)
        if failure is None:
            failure = plan.run_notebooks(range(1, len(plan.sources)))
        if failure is None:
            _point_latest(plan.folder)
        # The run's end is recorded before the site is built, so the site shows this run as it
        # ends (status, version, times), exactly as `convo runs` does.
        _finish(plan, record, failure)
        if failure is None and (failure := _build_site(plan.env)):
            _finish(plan, record, failure)  # the previous site stays; the history says why
    log.info("run %d %s in %.1f s: %s", record.run_id, record.status, time.perf_counter() - plan.clock, record.message)
    return RunReport(plan.folder, record, failure)


def run(
    env: Environment,
    inputs: list[str] | None = None,
    *,
    full_refresh: bool = False,
    run_date: datetime.date | None = None,
    config_file: Path | None = None,
) -> RunReport:
    """Execute the environment's notebooks in order; record the run and alert if it failed."""
    started = datetime.datetime.now(datetime.UTC)
    clock = time.perf_counter()
    run_date = run_date or _default_run_date(env, started)
    # Paths relative to the project root, where the kernels work: they are shown in the reports
    # (parameters cell, run header), which must not carry the absolute paths of this machine.
    inputs = [project_path(p, env.root) for p in inputs or []]
    command = _command(inputs, full_refresh, run_date)
    notify.warn_if_unusable(env)
    with created_with(env.umask), exclusive(_run_lock(env), env.name, command):
        with exclusive(env.warehouse, env.name, command):
            pass  # fail now, not in the first notebook, if a build or check is going on
        sources = discover(env.root / NOTEBOOKS_DIR)
        if not sources:
            raise ValueError(f"{env.root / NOTEBOOKS_DIR}: no notebooks (NN_name.py) to run")
        folder = env.reports_dir / env.name / started.strftime("%Y%m%dT%H%M%SZ")
        folder.mkdir(parents=True)
        parameters = {
            "env": env.name,
            "config_file": project_path((config_file or find_config()).resolve(), env.root),
            "warehouse": project_path(env.warehouse, env.root),  # --warehouse may be relative to where `convo` started
            "inputs": inputs,
            "full_refresh": full_refresh,
            "run_date": run_date.isoformat() if run_date else None,
        }
        plan = _Plan(env, sources, folder, parameters, command, started, clock)
        with _log_to(folder / "run.log"):
            log.info("run of environment %s: %d notebooks -> %s", env.name, len(sources), folder)
            report = _execute_and_record(plan)
    if not report.ok:
        log.error("run failed: %s", report.failure)
        summary = (
            report.record.summary()
            if report.record
            else {"environment": env.name, "command": command, "status": "failed", "message": report.failure}
        )
        notify.send(env, summary | {"report": str(folder)})
    return report
