"""The runner: orchestrates a build; what it does at each stage is in the modules it calls.

A build, inside the environment's lock and its run record (`session.py`):
1. recover from any earlier build that failed or died (its unpublished rows are discarded), and
   rewrite the readers' copy if it is behind (`publish.py`);
2. check every input file can be read, skip files whose content was already ingested, land, parse
   and de-duplicate the new rows into scratch tables (`inputs.py`, `ingest.py`);
3. in one transaction: plan what to recompute (`plan.py`) and evaluate it step by step, in
   dependency order (`evaluate.py`), merging the differences into version R;
4. audit version R through the candidate views (an incremental build: the partitions it changed,
   copied by `changes.py`);
5. publish R (re-point the views in `main`, swap in the readers' copy, written while the audit
   process validated if there was one: `publish.py`) or, if an error-level check failed, discard it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from convo.audit import checks as audit
from convo.audit import worker as audit_worker
from convo.build import changes, contract, evaluate, ingest, plan
from convo.build.inputs import record_ignored, stage_new_files
from convo.build.publish import copy_beside, discard_copy, publishing_copy, repair_copy
from convo.build.seeds import load_tag_contact_reasons
from convo.build.session import Session, recorded, session
from convo.config import Environment
from convo.engine.state import Run, TableRecord
from convo.engine.warehouse import CANDIDATE, CHANGES, PUBLISHED
from convo.models.registry import models

log = logging.getLogger(__name__)


class BuildFailed(RuntimeError):
    def __init__(self, run: Run):
        super().__init__(run.message)
        self.run = run


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
    names = list(inputs) if inputs else list(s.env.inputs)
    # The audit's process starts once there are new files (or for a full refresh), not for nothing new.
    with audit_worker.for_build(start=full_refresh) as auditor:
        listing = contract.expand(names)
        if not listing.files and not full_refresh:  # a full refresh may rebuild from the staged events alone
            raise ingest.InputError("no input file: none given, and the environment's `inputs` name none")
        record_ignored(listing.ignored, run)
        _discard_unpublished(s, run)
        repair_copy(s)
        staged = stage_new_files(s, listing.files, run, found_new=auditor.start)
        with s.wh.transaction():
            ev = _write(s, staged, run, full_refresh)
        if ev is None:
            run.status, run.message = "noop", "nothing new to load: every input was already ingested"
            run.published_version = s.versions.current_version()
            log.info(run.message)
            return run
        written = _audit(s, auditor, ev, run)
        _publish(s, run, written)
        return run


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


def _audit(s: Session, auditor: audit_worker.AuditWorker, ev: evaluate.Evaluation, run: Run) -> Path | None:
    """Audit version `run.run_id` through the candidate views; on an error-level failure discard
    it and raise BuildFailed. Returns its readers' copy if it was written meanwhile (`copy_beside`)."""
    s.store.stage_candidate(run.run_id)
    evaluate.create_views(s.wh, CANDIDATE)
    scoped = changes.stage_changes(s.store, ev, run.run_id)
    log.info("auditing version %d: %s", run.run_id, "the changed partitions" if scoped else "every row")
    with copy_beside(s, run.run_id, concurrently=auditor.started) as copy:
        run.checks = audit.run(
            s.env.warehouse,
            CANDIDATE,
            env=s.env,
            version=run.run_id,
            run_id=run.run_id,
            rows_schema=CHANGES if scoped else None,
            validate=auditor.validate,
            reader=copy.reader,
        )
    failed = [c for c in run.checks if not c.success and c.severity == audit.ERROR]
    if failed:
        if copy.written:
            discard_copy(s)
        _discard_after(s, s.versions.current_version())
        run.message = "audit failed, nothing published: " + "; ".join(
            f"{c.table_name}: {c.check_name} ({c.unexpected_count} failing)" for c in failed
        )
        raise BuildFailed(run)
    return copy.written


def _publish(s: Session, run: Run, written: Path | None) -> None:
    """Publish version `run.run_id` (views, recorded state, readers' copy: `written`, or written
    now) and expire the versions past the environment's retention."""
    with publishing_copy(s, run.run_id, written), s.wh.transaction():
        s.store.publish(run.run_id)
        s.versions.record_published(run.run_id)
        evaluate.create_views(s.wh, PUBLISHED)
        expired = s.versions.expire(s.env.retain_versions)
        s.store.expire(expired.oldest_kept)
    if expired.versions:
        log.info("expired versions %s (keeping the last %d)", list(expired.versions), s.env.retain_versions)
    run.status, run.published_version = "success", run.run_id


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
        with publishing_copy(s, to), s.wh.transaction():
            s.store.publish(to)
            s.versions.record_rollback(to)
        run.status, run.published_version = "success", to
        log.info("environment %s now publishes version %d", env.name, to)
        return run
