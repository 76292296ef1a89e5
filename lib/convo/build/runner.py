"""The runner: orchestrates a build; what it does at each stage is in the modules it calls.

A build, inside the environment's lock and its run record:
1. recover from any earlier build that failed or died (its unpublished rows are discarded);
2. check every input file can be read, skip files whose content was already ingested;
3. land, parse and de-duplicate the new rows into scratch tables (`ingest.py`);
4. in one transaction: plan what to recompute (`plan.py`) and evaluate it step by step, in
   dependency order (`evaluate.py`), merging the differences into version R;
5. audit version R through the candidate views (an incremental build: the partitions it changed,
   copied by `changes.py`);
6. publish R (re-point the views in `main`) or, if an error-level check failed, discard it.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from convo import notify, provenance
from convo.audit import checks as audit
from convo.audit import worker as audit_worker
from convo.build import changes, contract, evaluate, ingest, plan
from convo.build.seeds import load_tag_contact_reasons
from convo.config import Environment
from convo.engine import published_copy
from convo.engine.state import FileRecord, Run, RunLog, TableRecord, Versions
from convo.engine.store import Store
from convo.engine.warehouse import CANDIDATE, CHANGES, PUBLISHED, STORE, Warehouse
from convo.files import created_with
from convo.lock import exclusive
from convo.models.registry import models, table_docs

log = logging.getLogger(__name__)


class BuildFailed(RuntimeError):
    def __init__(self, run: Run):
        super().__init__(run.message)
        self.run = run


@dataclass
class Session:
    """An open environment: its lock, warehouse, versioned store, run log and versions' states."""

    env: Environment
    wh: Warehouse
    store: Store
    runs: RunLog
    versions: Versions
    alerted: bool = False  # the run's own record has sent the failure alert


@contextlib.contextmanager
def session(env: Environment, command: str) -> Iterator[Session]:
    """The environment, locked and open; a failure before its run could be recorded (a full disk,
    a damaged file) alerts here, since no run record will."""
    with created_with(env.umask), exclusive(env.warehouse, env.name, command):
        notify.warn_if_unusable(env)
        s: Session | None = None
        wh: Warehouse | None = None
        try:
            wh = Warehouse(env.warehouse, threads=env.threads, memory_limit=env.memory_limit)
            s = Session(env, wh, Store(wh), RunLog(wh), Versions(wh))
            if interrupted := s.runs.mark_interrupted():
                _alert_interrupted(env, interrupted, command)
            yield s
        except Exception as exc:
            if s is None or not s.alerted:
                notify.send(
                    env,
                    {
                        "environment": env.name,
                        "command": command,
                        "status": "failed",
                        "message": f"{type(exc).__name__}: {exc}",
                    },
                )
            raise
        finally:
            if wh is not None:
                wh.close()  # scratch tables are TEMP: they go with the connection


def _alert_interrupted(env: Environment, interrupted: list[dict], command: str) -> None:
    """Runs that died part-way (killed, or the machine stopped) alert like failed runs, once:
    the command that finds them marks them failed."""
    described = "; ".join(
        f"run {r['run_id']} `{r['command']}` started {r['started_at']:%Y-%m-%d %H:%M:%S} UTC" for r in interrupted
    )
    message = f"stopped part-way, found by `convo {command}`: {described}; the next build discards what they wrote"
    log.warning("%s", message)
    notify.send(
        env,
        {
            "environment": env.name,
            "command": command,
            "status": "interrupted",
            "message": message,
            "interrupted_runs": interrupted,
        },
    )


@contextlib.contextmanager
def recorded(s: Session, command: str, *, full_refresh: bool = False) -> Iterator[Run]:
    """Record the run; on failure mark it failed, say why and alert."""
    run = s.runs.start(
        s.env.name,
        command,
        full_refresh=full_refresh,
        code=provenance.code_version(s.env.root),
        config=provenance.configuration(s.env),
    )
    handler = _run_log_file(s.env, run)
    log.info(
        "run %d (%s): code %s, configuration %s",
        run.run_id,
        command,
        run.code.label,
        provenance.config_digest(run.config),
    )
    t0 = time.perf_counter()
    try:
        yield run
    except BaseException as exc:
        run.status = "failed"
        run.message = run.message or f"{type(exc).__name__}: {exc}"
        log.error("run %s failed: %s", run.run_id, run.message)
        raise
    finally:
        log.info("run %s %s in %.1f s", run.run_id, run.status, time.perf_counter() - t0)
        try:
            s.runs.finish(run)
        except Exception as exc:  # e.g. the disk is full: the run failed, and its alert must still go
            log.error("run %s could not be recorded: %s", run.run_id, exc)
            if run.status != "failed":
                run.status, run.message = "failed", f"the run could not be recorded: {type(exc).__name__}: {exc}"
            raise
        finally:
            logging.getLogger("convo").removeHandler(handler)
            handler.close()
            if run.status == "failed":
                notify.send(s.env, run.summary())
                s.alerted = True


def _run_log_file(env: Environment, run: Run) -> logging.Handler:
    path = env.warehouse.parent / "logs" / env.name / f"run-{run.run_id:06d}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("convo").addHandler(handler)
    return handler


# -- ingestion --------------------------------------------------------------------------------
def _new_files(s: Session, files: list[ingest.InputFile], run: Run) -> list[ingest.InputFile]:
    """Files whose content is not ingested yet; the others are recorded as skipped."""
    known = {}
    if s.wh.has_table("ingested_files", STORE):
        known = {
            sha: (fid, rid)
            for sha, fid, rid in s.wh.execute(
                f"SELECT sha256, file_id, run_id FROM {STORE}.ingested_files WHERE _valid_to IS NULL"
            )
        }
    new, seen = [], set()
    for f in files:
        if f.sha256 in known or f.sha256 in seen:
            file_id, by_run = known.get(f.sha256, (None, run.run_id))
            action = f"skipped: same content already ingested by run {by_run}"
            log.info("%s: %s", f.path, action)
            run.files.append(FileRecord(file_id, str(f.path), f.sha256, f.file_format, action))
            continue
        seen.add(f.sha256)
        new.append(f)
    return new


def _record_ignored(entries: list[Path], run: Run) -> None:
    """Entries of an input directory that are not read: said in the log and the run's files."""
    for path in entries:
        action = contract.not_read(path)
        log.warning("%s: %s", path, action)
        run.files.append(FileRecord(None, str(path), None, None, action))


def _stage_inputs(
    s: Session, paths: list[Path], run: Run, found_new: Callable[[], None] = lambda: None
) -> evaluate.Staged | None:
    """Read and stage the files not ingested yet into scratch tables (calling `found_new` first,
    if there are any); nothing is stored yet.

    Returns what was staged (None when no file is new). Outside the write transaction: DuckDB
    reads back rows written in an open transaction about twice as slowly.
    """
    with contract.inspected(paths) as inspected:
        files = _new_files(s, inspected, run)
        if not files:
            return None
        found_new()
        first_id = (
            s.wh.scalar(f"SELECT max(file_id) FROM {STORE}.ingested_files")
            if s.wh.has_table("ingested_files", STORE)
            else None
        ) or 0
        by_id = ingest.land(s.wh, files, first_id + 1)
        window = s.env.event_window.bounds(datetime.datetime.now(datetime.UTC))
        log.info("accepting events from %s to %s (event_window)", *window)
        snapshot = evaluate.StagedSnapshot(s.store)
        counts = ingest.stage_batch(s.wh, by_id, snapshot if s.store.live_count(evaluate.STAGED) else None, window)
    batch_files = evaluate.ScratchTable("batch_files")
    s.wh.execute(
        f"CREATE OR REPLACE TEMP TABLE {batch_files.sql} (file_id BIGINT, path VARCHAR, sha256 VARCHAR,"
        " file_format VARCHAR, rows_read BIGINT, rows_staged BIGINT, rows_rejected BIGINT,"
        " duplicates_removed BIGINT, run_id BIGINT)"
    )
    records = [
        FileRecord(
            fid,
            str(f.path),
            f.sha256,
            f.file_format,
            "ingested",
            counts[fid].rows_read,
            counts[fid].rows_staged,
            counts[fid].rows_rejected,
            counts[fid].duplicates_removed,
        )
        for fid, f in by_id.items()
    ]
    s.wh.execute_many(
        f"INSERT INTO {batch_files.sql} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [
                r.file_id,
                r.path,
                r.sha256,
                r.file_format,
                r.rows_read,
                r.rows_staged,
                r.rows_rejected,
                r.duplicates_removed,
                run.run_id,
            ]
            for r in records
        ],
    )
    for r in records:
        run.files.append(r)
        log.info(
            "%s: %d rows read = %d staged + %d rejected + %d duplicates",
            r.path,
            r.rows_read,
            r.rows_staged,
            r.rows_rejected,
            r.duplicates_removed,
        )
    return evaluate.Staged(
        events=evaluate.ScratchTable("batch_events"),  # written by `ingest.stage_batch`, as it documents
        rows=sum(c.rows_staged for c in counts.values()),
        files=batch_files,
        rejected=evaluate.ScratchTable("batch_rejected"),
        snapshot=snapshot.table,
    )


def _unqualified_view_sql(s: Session) -> dict[str, str]:
    """The SQL of each view model over unqualified tables of the current catalog and schema."""
    return {
        m.name: s.wh.compile(m.fn(**{i: s.wh.con.table(i) for i in m.inputs}))
        for m in models().values()
        if m.materialized == "view"
    }


def _write_copy(s: Session, version: int) -> Path:
    """Write the readers' copy of `version` (published_copy.py); `swap` it in once it is published."""
    t0 = time.perf_counter()
    keys = {name: doc.primary_key for name, doc in table_docs().items()}
    written = published_copy.write(s.wh, s.store, version, lambda: _unqualified_view_sql(s), keys)
    log.info(
        "readers' copy of version %d written (%.0f MB) in %.2f s",
        version,
        written.stat().st_size / 2**20,
        time.perf_counter() - t0,
    )
    return written


@contextlib.contextmanager
def _publishing_copy(s: Session, version: int) -> Iterator[None]:
    """Write the readers' copy of `version`, run the body (which publishes it in the store), swap the
    copy in. If the body fails, the copy is removed and readers keep the file they had."""
    written = _write_copy(s, version)
    try:
        yield
    except BaseException:
        published_copy.discard(s.env.warehouse)
        raise
    published_copy.swap(written, s.env.warehouse)


def _repair_copy(s: Session) -> None:
    """Rewrite the readers' copy if it is missing or behind the published version (a warehouse from
    before the copies, or a process stopped between publishing and swapping)."""
    current = s.versions.current_version()
    if current and published_copy.version_in(s.env.warehouse) != current:
        log.info("the readers' copy is not version %d: writing it", current)
        with _publishing_copy(s, current):
            pass


def _write(s: Session, staged: evaluate.Staged | None, run: Run, full_refresh: bool) -> evaluate.Evaluation | None:
    """Write version `run.run_id` from what was staged (uncommitted until this returns): plan, then
    evaluate each step once its inputs' changes are known (`plan.decide` narrows the plan to them).

    Returns the evaluation, or None when nothing changed.
    """
    ev = evaluate.Evaluation(s.store, run.run_id, staged)
    if staged is not None:
        evaluate.append_ingested(ev)
    evaluate.merge_seed(ev, "seed_tag_contact_reasons", load_tag_contact_reasons(s.env.seeds_dir), key=("tag",))
    never_written = frozenset(n for n, m in models().items() if m.materialized == "table" and s.store.never_written(n))
    planned = plan.plan(models(), ev.changes(), full_refresh=full_refresh, never_written=never_written)
    log.info("plan, before each step sees what its inputs did change: %s", plan.summary(planned))
    for planned_step in planned.steps:
        m = planned_step.model
        step = plan.Step(m, plan.decide(m, ev.changes(), full_refresh=full_refresh, never_written=never_written))
        result = evaluate.evaluate(ev, step)
        if isinstance(result, evaluate.Recomputed):
            d = result.delta
            run.tables.append(TableRecord(m.name, result.live_rows, d.inserted, d.retired, result.seconds))
    # New files are recorded even when all their rows were known: a version to publish.
    return ev if staged is not None or ev.changes() else None


def _discard_unpublished(s: Session, run: Run) -> None:
    """End the versions after the published one (failed, killed or rolled back).

    Only when a build ran since the published version: discarding scans every stored table.
    """
    current = s.versions.current_version()
    if s.runs.builds_between(current, run.run_id):
        _discard_after(s, current)


def _discard_after(s: Session, version: int) -> None:
    """Forget the versions after `version`: their rows and their recorded states, together."""
    with s.wh.transaction():
        s.store.discard_after(version)
        s.versions.record_discarded_after(version)


def build(env: Environment, inputs: list[str] | None = None, *, full_refresh: bool = False) -> Run:
    """Ingest `inputs` (default: the environment's), rebuild what they change, audit, publish."""
    names = list(inputs) if inputs else list(env.inputs)
    command = "build" + (" --full-refresh" if full_refresh else "") + "".join(f" {p}" for p in names)
    with session(env, "build") as s, recorded(s, command, full_refresh=full_refresh) as run:
        return build_in_session(s, run, names, full_refresh=full_refresh)


def build_in_session(s: Session, run: Run, inputs: list[str] | None, *, full_refresh: bool) -> Run:
    """The build of `run` in an open, recorded session (`session`, `recorded`): ingest `inputs`
    (default: the environment's), rebuild what they change, audit, publish. Raises BuildFailed
    when an error-level check fails; the published version is then as it was."""
    env = s.env
    names = list(inputs) if inputs else list(env.inputs)
    # The audit's process starts once there are new files (or for a full refresh), not for nothing new.
    with audit_worker.for_build(start=full_refresh) as auditor:
        listing = contract.expand(names)
        if not listing.files and not full_refresh:  # a full refresh may rebuild from the staged events alone
            raise ingest.InputError("no input file: none given, and the environment's `inputs` name none")
        _record_ignored(listing.ignored, run)
        _discard_unpublished(s, run)
        _repair_copy(s)
        staged = _stage_inputs(s, listing.files, run, found_new=auditor.start)
        with s.wh.transaction():
            ev = _write(s, staged, run, full_refresh)
        if ev is None:
            run.status, run.message = "noop", "nothing new to load: every input was already ingested"
            run.published_version = s.versions.current_version()
            log.info(run.message)
            return run
        s.store.stage_candidate(run.run_id)
        evaluate.create_views(s.wh, CANDIDATE)
        scoped = changes.stage_changes(s.store, ev, run.run_id)
        log.info("auditing version %d: %s", run.run_id, "the changed partitions" if scoped else "every row")
        with s.wh.released():
            run.checks = auditor.run(
                env.warehouse,
                CANDIDATE,
                env=env,
                version=run.run_id,
                run_id=run.run_id,
                rows_schema=CHANGES if scoped else None,
            )
        failed = [c for c in run.checks if not c.success and c.severity == audit.ERROR]
        if failed:
            _discard_after(s, s.versions.current_version())
            run.message = "audit failed, nothing published: " + "; ".join(
                f"{c.table_name}: {c.check_name} ({c.unexpected_count} failing)" for c in failed
            )
            raise BuildFailed(run)
        with _publishing_copy(s, run.run_id), s.wh.transaction():
            s.store.publish(run.run_id)
            s.versions.record_published(run.run_id)
            evaluate.create_views(s.wh, PUBLISHED)
            expired = s.versions.expire(env.retain_versions)
            s.store.expire(expired.oldest_kept)
        if expired.versions:
            log.info("expired versions %s (keeping the last %d)", list(expired.versions), env.retain_versions)
        run.status, run.published_version = "success", run.run_id
        return run


def check(env: Environment) -> Run:
    """Audit the published version; the results are recorded with the run."""
    with session(env, "check") as s, recorded(s, "check") as run:
        run.published_version = s.versions.current_version()
        if not run.published_version:
            raise ValueError(f"environment {env.name!r} has nothing published yet; run `convo build` first")
        with s.wh.released():
            run.checks = audit.run(
                env.warehouse, PUBLISHED, env=env, version=run.published_version, run_id=run.run_id, data_docs=True
            )
        failed = [c for c in run.checks if not c.success and c.severity == audit.ERROR]
        run.status = "failed" if failed else "success"
        if failed:
            run.message = f"{len(failed)} error-level checks failed on the published version"
        return run


def rollback(env: Environment, to: int | None = None) -> Run:
    """Make the previous published version (or version `to`) the current one."""
    with session(env, "rollback") as s, recorded(s, f"rollback{f' --to {to}' if to else ''}") as run:
        published, rolled_back = s.versions.published_versions(), s.versions.rolled_back_versions()
        if to is None:
            if len(published) < 2:
                raise ValueError(f"environment {env.name!r} has no earlier published version to roll back to")
            to = published[-2]
        elif to not in published and to not in rolled_back:
            raise ValueError(
                f"version {to} cannot be restored; available: {', '.join(map(str, published + rolled_back)) or 'none'}"
            )
        with _publishing_copy(s, to), s.wh.transaction():
            s.store.publish(to)
            s.versions.record_rollback(to)
        run.status, run.published_version = "success", to
        log.info("environment %s now publishes version %d", env.name, to)
        return run
