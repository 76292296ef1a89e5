"""`convo run`: build, then the pipeline's notebooks executed with papermill, then the site.

One run, one lock and one record: the run opens the environment as a build does
(`build/session.py`: `session`, the environment's lock, held to the end; `recorded`, its row in
the run history, command "run ...") and builds in this process (`runner.build_in_session`). The
notebooks only read: each `notebooks/NN_name.py` (jupytext percent format, the source of truth) is
a report, started in the order of its number, so adding a report is adding a file. The first
(10_ingest) shows what this run's build did (its run id is a parameter); the others report on the
published version; one whose inputs are all unchanged since the last run whose notebooks all
succeeded is copied from that run instead of executed again (`reuse.py`). They run side by side,
as many at once as the environment has threads. While
they run, the warehouse file is closed (they open it read-only) but the lock is held, so no other
build, check or rollback can change the published version under them. A run writes:

    reports/<env>/<stamp>/NN_name.ipynb   the executed notebook (kept, with the error, if a cell fails)
    reports/<env>/<stamp>/NN_name.html    for readers: prose and outputs, no code; self-contained, nothing
                                          from the network
    reports/<env>/<stamp>/NN_name.code.html  every cell with its code, for engineers
    reports/<env>/<stamp>/NN_name.reads   the tables the notebook queried (convo/reads.py), for the lineage
    reports/<env>/<stamp>/run.log         the progress lines, the build's included
    reports/<env>/latest -> <stamp>       the last run whose notebooks all succeeded

<stamp> is the run's UTC start time (20261127T021500Z): known before the warehouse is opened;
sorted by time; unique, because two runs of one environment cannot overlap. The run's record
names the folder. A build whose audit fails raises `runner.BuildFailed` before any notebook runs
(the record and the alert say which checks failed); a failed notebook or site fails the run.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from convo import notify
from convo.build import runner
from convo.build.session import Session, recorded, session
from convo.config import Environment, find_config
from convo.engine.state import Run
from convo.reports import reads, report_view, reuse
from convo.shown_paths import project_path

log = logging.getLogger(__name__)
# papermill logs each notebook's paths at INFO; the progress lines below say more, once.
logging.getLogger("papermill").setLevel(logging.WARNING)

NOTEBOOKS_DIR = "notebooks"
KERNEL = "python3"  # ipykernel's own kernel: the Python of the process that runs `convo run`
KERNELSPEC = {"name": KERNEL, "display_name": "Python 3 (ipykernel)", "language": "python"}
_NOTEBOOK_NAME = re.compile(r"^(\d+)_\w+\.py$")
SiteBuilder = Callable[[Environment], Path]  # builds the environment's site, returns its folder


@dataclass
class RunReport:
    folder: Path
    record: Run  # the run's row in the history
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


@dataclass
class Prepared:
    """A notebook written where it will execute, with the parameters it declares."""

    target: Path
    code_cells: int
    declared: dict  # the parameters of its `parameters` cell (papermill.inspect_notebook)
    passed: dict  # those of them this run gives


def prepare_notebook(source: Path, target: Path, parameters: dict) -> Prepared:
    """Write the notebook of `source` to `target`, ready to execute with the `parameters` it declares."""
    import nbformat
    import papermill

    nb = read_notebook(source)
    nbformat.write(nb, target)  # papermill reads and inspects notebooks from files
    declared = papermill.inspect_notebook(target)
    # Only the parameters the notebook declares: each step takes what it needs.
    passed = {k: v for k, v in parameters.items() if k in declared}
    return Prepared(target, sum(c.cell_type == "code" for c in nb.cells), declared, passed)


def execute_notebook(
    source: Path, target: Path, parameters: dict, *, cwd: Path, label: str, run_started: float
) -> float:
    """Execute one notebook with papermill into `target`; returns seconds. Raises if a cell fails."""
    prepared = prepare_notebook(source, target, parameters)
    return execute_prepared(prepared, cwd=cwd, label=label, run_started=run_started)


def execute_prepared(
    prepared: Prepared, *, cwd: Path, label: str, run_started: float, inputs: dict | None = None
) -> float:
    """Execute a prepared notebook with papermill in place; returns seconds. Raises if a cell fails.
    `inputs` (what its output is a function of: `reuse.inputs`) is recorded in its metadata.

    Safe to call from several threads at once: the kernel gets its working directory and
    environment from its own kernel manager, not from this process's (which papermill's `cwd`
    would change for every thread)."""
    import nbformat
    import papermill

    target = prepared.target
    if inputs is not None:
        nb = nbformat.read(target, as_version=4)
        nb.metadata[reuse.METADATA_KEY] = inputs
        nbformat.write(nb, target)
    # + the injected-parameters cell
    progress = _Progress(label, prepared.code_cells + bool(prepared.passed), run_started)
    t0 = time.perf_counter()
    reads_file = target.with_suffix(reads.SUFFIX)
    reads_file.write_text("", encoding="utf-8")  # a notebook that reads nothing still says so
    papermill.execute_notebook(
        target,
        target,
        parameters=prepared.passed,
        kernel_name=KERNEL,
        progress_bar=False,
        on_cell_start=progress.cell_started,
        kernel_manager_class=_kernel_manager(cwd, {reads.VARIABLE: str(reads_file.resolve())}),
        # Killed once its outputs are in: nothing of it needs saving, and jupyter_client's graceful
        # shutdown waits seconds for some kernels to leave (BENCHMARKS.md, 2026-12-05 afternoon).
        shutdown_kernel="immediate",
    )
    return time.perf_counter() - t0


def _kernel_manager(cwd: Path, variables: dict[str, str]) -> type:
    """A kernel manager class whose kernels start in `cwd` with `variables` added to this process's
    environment (the notebook's reads file: convo/reads.py)."""
    from jupyter_client.manager import AsyncKernelManager

    class KernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            kw["env"] = {**os.environ, **kw.get("env", {}), **variables}
            kw["cwd"] = str(cwd)
            return await super().start_kernel(**kw)

    return KernelManager


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


@functools.cache
def _exporters():
    """The engineers' and the readers' HTML exporters, made once per process: an exporter compiles
    its templates on its first render, most of what a render costs."""
    import jinja2
    from nbconvert import HTMLExporter

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
    return engineers, readers


_RENDERING = threading.Lock()  # the exporters are shared by the run's threads, one render at a time


def _warm_up() -> None:
    """Import what executing and rendering notebooks needs and compile the exporters' templates,
    on a thread beside the build (which, on a small input, spends most of its time waiting for its
    audit) rather than in the first notebooks' threads. A failure here is the first notebook's to
    report."""
    try:
        import jupytext  # noqa: F401
        import nbformat
        import papermill  # noqa: F401

        empty = nbformat.v4.new_notebook()
        with _RENDERING:
            for exporter in _exporters():
                exporter.from_notebook_node(empty)
    except Exception:
        log.debug("warming up the notebook machinery failed", exc_info=True)


def render_html(notebook: Path) -> Path:
    """Two HTML copies of an executed notebook next to it, viewable with no network: `NN_name.html`
    for readers (prose and outputs, no code: `report_view.for_readers`) and `NN_name.code.html`
    with every cell, for engineers. Returns the readers' copy."""
    import nbformat

    executed = nbformat.read(notebook, as_version=4)
    with _RENDERING:
        engineers, readers = _exporters()
        code_body, _ = engineers.from_notebook_node(executed)
        body, _ = readers.from_notebook_node(nbformat.from_dict(report_view.for_readers(executed)))
    notebook.with_suffix(".code.html").write_text(code_body, encoding="utf-8")
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
    """One run's notebooks: where they write, what they are given."""

    env: Environment
    sources: list[Path]
    folder: Path
    parameters: dict
    clock: float  # time.perf_counter() at the start
    published: tuple[int, datetime.datetime] | None = None  # the version the reports describe, built when
    previous: Path | None = None  # the last run whose reports all succeeded: reports to reuse (reuse.py)
    warming_up: threading.Thread | None = None  # `_warm_up`, started beside the build

    def run_notebook(self, i: int) -> str | None:
        """Execute the notebook at position `i` and render it to HTML, or reuse the earlier run's if
        its inputs are unchanged; returns why it failed, if it did."""
        source = self.sources[i]
        label = f"[{i + 1}/{len(self.sources)}] {source.stem}"
        target = self.folder / f"{source.stem}.ipynb"
        log.info("%s: started", label)
        try:
            prepared = prepare_notebook(source, target, self.parameters)
            inputs = self._inputs(source, prepared)
            if inputs is not None and (earlier := reuse.earlier_report(self.previous, source.stem, inputs)):
                reuse.copy_report(earlier, self.folder)
                log.info(
                    "%s: reused from %s: its inputs are unchanged (published version %d, notebook, parameters,"
                    " code, configuration) -> %s",
                    label,
                    project_path(earlier.parent.resolve(), self.env.root),
                    inputs["published_version"],
                    target.with_suffix(".html"),
                )
                return None
            seconds = execute_prepared(prepared, cwd=self.env.root, label=label, run_started=self.clock, inputs=inputs)
        except Exception as exc:  # the notebook, as far as it ran, is kept and rendered with its error
            failure = _failure(source.stem, exc)
            log.error("%s: %s", label, failure)
            if target.exists():
                render_html(target)
            return failure
        render_html(target)
        log.info("%s: done in %.1f s -> %s", label, seconds, target.with_suffix(".html"))
        return None

    def _inputs(self, source: Path, prepared: Prepared) -> dict | None:
        """What the notebook's output is a function of (`reuse.inputs`), if it can be reused at all."""
        if self.published is None or not reuse.reusable(prepared.declared):
            return None
        return reuse.inputs(source, prepared.passed, self.env, *self.published)

    def run_all(self) -> str | None:
        """Every notebook, side by side, as many at once as the environment has threads (each only
        reads, so none waits for another), started in the order of their number. Returns the failure
        of the first notebook in that order that failed."""
        if self.warming_up is not None:
            # Two threads importing the same modules at once can fail with importlib's _DeadlockError.
            self.warming_up.join()
        with ThreadPoolExecutor(max_workers=max(1, self.env.threads)) as pool:
            failures = list(pool.map(self.run_notebook, range(len(self.sources))))
        return next((f for f in failures if f), None)


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


def _point_latest(folder: Path) -> None:
    """Re-point reports/<env>/latest at `folder` atomically (readers never see it missing)."""
    link = folder.parent / "latest"
    staging = folder.parent / f".latest-{os.getpid()}"
    staging.unlink(missing_ok=True)
    staging.symlink_to(folder.name, target_is_directory=True)
    os.replace(staging, link)


def _latest(reports: Path) -> Path | None:
    """The folder of the last run whose notebooks all succeeded, if any."""
    link = reports / "latest"
    return link.resolve() if link.is_dir() else None


def _build_site(site: SiteBuilder, env: Environment) -> str | None:
    """Build the docs site; returns why it failed, if it did (the previous site then stays)."""
    try:
        log.info("docs site built: %s", site(env))
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


def _report_notebooks(s: Session, record: Run, plan: _Plan) -> str | None:
    """After the build: its record saved for the notebooks to read, the warehouse closed while they
    run (the lock stays held: nothing can change the published version under them), `latest`
    re-pointed on success. Sets the run's outcome; returns the failure, if any."""
    built = record.message  # e.g. "nothing new to load: ..."
    record.status, record.message = "running", None  # the build's part is done, the run's is not
    s.runs.save(record)
    if record.published_version:
        plan.published = (record.published_version, s.runs.run_row(record.published_version).started_at)
    with s.wh.released():
        failure = plan.run_all()
    if failure is None:
        _point_latest(plan.folder)
    record.status = "failed" if failure else "success"
    record.message = "; ".join(filter(None, [failure, built, f"report: {plan.folder}"]))
    return failure


def run(
    env: Environment,
    inputs: list[str] | None = None,
    *,
    full_refresh: bool = False,
    run_date: datetime.date | None = None,
    config_file: Path | None = None,
    site: SiteBuilder | None = None,
) -> RunReport:
    """Build, then execute the environment's notebooks, then build the site with `site`: one run,
    one lock, one record (`session`, `recorded`). A failed notebook or site fails the
    run and alerts; a failed build raises `runner.BuildFailed` (recorded and alerted) before any
    notebook runs."""
    started = datetime.datetime.now(datetime.UTC)
    clock = time.perf_counter()
    run_date = run_date or _default_run_date(env, started)
    files = [os.path.abspath(p) for p in inputs or []]  # as the caller named them, from its working directory
    # The command names them relative to the project root: it is shown in the reports (run
    # header), which must not carry the absolute paths of this machine.
    command = _command([project_path(p, env.root) for p in files], full_refresh, run_date)
    sources = discover(env.root / NOTEBOOKS_DIR)
    if not sources:
        raise ValueError(f"{env.root / NOTEBOOKS_DIR}: no notebooks (NN_name.py) to run")
    folder = env.reports_dir / env.name / started.strftime("%Y%m%dT%H%M%SZ")
    with session(env, command) as s:
        folder.mkdir(parents=True)
        with _log_to(folder / "run.log"), recorded(s, command, full_refresh=full_refresh) as record:
            record.report = str(folder)
            log.info("run of environment %s: build, %d notebooks -> %s", env.name, len(sources), folder)
            warming_up = threading.Thread(target=_warm_up, name="convo-notebooks-warm-up", daemon=True)
            warming_up.start()
            runner.build_in_session(s, record, files, full_refresh=full_refresh)
            parameters = {
                "env": env.name,
                "config_file": project_path((config_file or find_config()).resolve(), env.root),
                "warehouse": project_path(env.warehouse, env.root),  # --warehouse may be relative to the caller's
                "run_id": record.run_id,
                "run_date": run_date.isoformat() if run_date else None,
            }
            # --full-refresh recomputes everything, the reports included: nothing is reused.
            previous = None if full_refresh else _latest(folder.parent)
            failure = _report_notebooks(
                s, record, _Plan(env, sources, folder, parameters, clock, previous=previous, warming_up=warming_up)
            )
        # Recorded (and alerted, if it failed) before the site is built: the site shows this run as
        # it ended, exactly as `convo runs` does.
        if failure is None and site is not None:
            with s.wh.released():
                failure = _build_site(site, env)
            if failure:
                record.status, record.message = "failed", f"{failure}; report: {folder}"
                s.runs.finish(record)  # the previous site stays; the history says why
                notify.send(env, record.summary())
                s.alerted = True
    log.info("run %d %s in %.1f s: %s", record.run_id, record.status, time.perf_counter() - clock, record.message)
    return RunReport(folder, record, failure)
