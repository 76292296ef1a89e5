"""The runner: the one place that reads, writes, merges, audits and publishes.

A build, inside the environment's lock:
1. recover from any earlier build that failed or died (its unpublished rows are discarded);
2. check every input file can be read, skip files whose content was already ingested;
3. land, parse and de-duplicate the new rows into scratch tables;
4. in one transaction: store them, then recompute each model, in dependency order, for the
   partitions the changed rows touch, and merge the differences into version R;
5. audit version R through the candidate views (an incremental build: the partitions it changed);
6. publish R (re-point the views in `main`) or, if an error-level check failed, discard it.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ibis

from convo import notify, provenance
from convo.audit import checks as audit
from convo.audit import worker as audit_worker
from convo.build import contract, ingest
from convo.build.seeds import load_tag_contact_reasons
from convo.config import Environment
from convo.engine import published_copy
from convo.engine.state import FileRecord, Run, RunLog, TableRecord, Versions
from convo.engine.store import FROM, Delta, Store
from convo.engine.warehouse import CANDIDATE, CHANGES, PUBLISHED, STORE, WORK, Warehouse
from convo.files import created_with
from convo.lock import exclusive
from convo.models.registry import Model, models, table_docs

log = logging.getLogger(__name__)

STAGED = "stg_conversation_events"
INGESTION_TABLES = ("ingested_files", "rejected_conversation_events")  # appended to, never merged
ALL = "all"  # a model whose every partition must be recomputed


class BuildFailed(RuntimeError):
    def __init__(self, run: Run):
        super().__init__(run.message)
        self.run = run


@dataclass(frozen=True)
class Written:
    """What a build wrote: each model's recomputed partitions (see `_touched`) and merge delta."""

    touched: dict[str, str | None]
    deltas: dict[str, Delta]


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


def _stage_inputs(s: Session, paths: list[Path], run: Run) -> Delta | None:
    """Read and stage the files not ingested yet into scratch tables; nothing is stored yet.

    Returns the delta of accepted events (None when no file is new). Outside the write
    transaction: DuckDB reads back rows written in an open transaction about twice as slowly.
    """
    with contract.inspected(paths) as inspected:
        files = _new_files(s, inspected, run)
        if not files:
            return None
        first_id = (
            s.wh.scalar(f"SELECT max(file_id) FROM {STORE}.ingested_files")
            if s.wh.has_table("ingested_files", STORE)
            else None
        ) or 0
        by_id = ingest.land(s.wh, files, first_id + 1)
        window = s.env.event_window.bounds(datetime.datetime.now(datetime.UTC))
        log.info("accepting events from %s to %s (event_window)", *window)
        counts = ingest.stage_batch(s.wh, by_id, _staged_events_reader(s), window)
    s.wh.execute(
        f"CREATE OR REPLACE TEMP TABLE {WORK}.batch_files (file_id BIGINT, path VARCHAR, sha256 VARCHAR,"
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
        f"INSERT INTO {WORK}.batch_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    return Delta(sum(c.rows_staged for c in counts.values()), 0, "batch_events")


def _staged_events_reader(s: Session):
    """For ingestion: reads the live staged events of the conversations in a scratch table.

    The read is the snapshot the staged events' merge needs (`old_<STAGED>`): the conversations
    a batch brings are the ones that merge recomputes, so the big table is scanned once for both.
    """
    if not s.store.live_count(STAGED):
        return None

    def read(conversations: str) -> ibis.Table:
        s.store.snapshot(
            STAGED, f"old_{STAGED}", f'conversation_id IN (SELECT conversation_id FROM {WORK}."{conversations}")'
        )
        return s.wh.table(f"old_{STAGED}", WORK)

    return read


# -- models -----------------------------------------------------------------------------------
def _touched(s: Session, m: Model, deltas: dict[str, Delta], full_refresh: bool) -> str | None:
    """ALL, None (nothing to do), or the scratch table holding the partitions to recompute."""
    if full_refresh or (m.materialized == "table" and s.store.never_written(m.name)):
        return ALL
    changed = [i for i in m.inputs if i in deltas and deltas[i].changed]
    if not changed:
        return None
    if m.partition is None or any(deltas[i].everything or m.scope.get(i) is None for i in changed):
        return ALL
    parts = [
        f'SELECT "{col}" AS value FROM {WORK}."{deltas[i].table}" WHERE "{col}" IS NOT NULL'
        for i in changed
        for col in m.scope[i]
    ]
    name = f"touched_{m.name}"
    s.wh.materialize(name, "SELECT DISTINCT value FROM (" + " UNION ALL ".join(parts) + ")")
    return name if s.wh.scalar(f"SELECT count(*) FROM {WORK}.{name}") else None


def _input(s: Session, m: Model, name: str, touched: str, recomputed: dict[str, str | None]) -> ibis.Table:
    if name == "accepted_events":
        batch = s.wh.table("batch_events", WORK) if s.wh.has_table("batch_events", WORK) else None
        if touched != ALL and s.wh.has_table(f"old_{STAGED}", WORK):  # the touched conversations', read already
            staged = s.wh.table(f"old_{STAGED}", WORK).drop("event_sequence")
        else:
            staged = s.store.live(STAGED).drop("event_sequence") if s.store.live_count(STAGED) else None
        if staged is not None and batch is not None:
            table = staged.select(*batch.columns).union(batch)
        else:
            table = staged if batch is None else batch
    elif _reads_recomputed_rows(s, m, name, touched, recomputed.get(name)):
        table = s.wh.table(f"new_{name}", WORK)
    else:
        table = s.store.live(name)
    scope = m.scope.get(name)
    if touched == ALL or not scope:
        return table
    values = s.wh.table(touched, WORK).value
    return table.filter(ibis.or_(*(table[c].isin(values) for c in scope)))


def _reads_recomputed_rows(s: Session, m: Model, name: str, touched: str, input_touched: str | None) -> bool:
    """Whether model `m` can read input `name` from its scratch table of recomputed partitions
    (`new_<name>`: after the merge, exactly its live rows there) instead of the stored table:
    when `m` reads it by its partition column, within the partitions it recomputed."""
    upstream = models().get(name)
    if upstream is None or touched == ALL or input_touched in (None, ALL) or not s.wh.has_table(f"new_{name}", WORK):
        return False
    if m.scope.get(name) != (upstream.partition,):
        return False
    outside = f"SELECT count(*) FROM {WORK}.{touched} WHERE value NOT IN (SELECT value FROM {WORK}.{input_touched})"
    return s.wh.scalar(outside) == 0


def _view_sql(s: Session, m: Model, schema: str) -> str:
    """The SQL of view model `m` over its inputs in `schema`."""
    return s.wh.compile(m.fn(**{i: s.wh.table(i, schema) for i in m.inputs}))


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


def _create_views(s: Session, schema: str) -> None:
    """(Re)define the view models in `schema` over the tables of that same schema."""
    for m in models().values():
        if m.materialized == "view":
            s.wh.execute(f'CREATE OR REPLACE VIEW {schema}."{m.name}" AS {_view_sql(s, m, schema)}')


def _build_model(
    s: Session, m: Model, deltas: dict[str, Delta], run: Run, full_refresh: bool, recomputed: dict[str, str | None]
) -> str | None:
    """Recompute the model's touched partitions and merge them; returns what `_touched` found.

    `recomputed` holds what the models before it recomputed."""
    t0 = time.perf_counter()
    touched = _touched(s, m, deltas, full_refresh)
    if m.materialized == "view":
        return touched  # nothing to store; the audit still checks the touched partitions
    if touched is None:
        log.info("%s: no input changed", m.name)
        return None
    old_filter, old = None, None
    if touched != ALL:
        old_filter = f'"{m.partition}" IN (SELECT value FROM {WORK}.{touched})'
        old = f"old_{m.name}"  # the rows being recomputed, read once (the staged events' input too)
        if s.wh.has_table(old, WORK):  # read while staging, for the conversations of the batch
            s.wh.execute(f'DELETE FROM {WORK}."{old}" WHERE NOT ({old_filter})')
        elif s.store.live_count(m.name):
            s.store.snapshot(m.name, old, old_filter)
        else:
            old = None
    expr = m.fn(**{i: _input(s, m, i, touched, recomputed) for i in m.inputs})
    if touched != ALL:
        expr = expr.filter(expr[m.partition].isin(s.wh.table(touched, WORK).value))
    if touched == ALL and s.store.live_count(m.name) == 0:
        delta = s.store.insert(m.name, s.wh.compile(expr), run.run_id)  # no copy: nothing to compare with
    else:
        s.wh.materialize(f"new_{m.name}", expr)
        delta = s.store.merge(
            m.name, f"new_{m.name}", key=m.doc.primary_key, old_filter=old_filter, version=run.run_id, old=old
        )
    deltas[m.name] = delta
    seconds = time.perf_counter() - t0
    rows = s.store.live_count(m.name)
    run.tables.append(TableRecord(m.name, rows, delta.inserted, delta.retired, seconds))
    scope = (
        "all partitions" if touched == ALL else f"{s.wh.scalar(f'SELECT count(*) FROM {WORK}.{touched}')} partitions"
    )
    log.info("%s: %d rows (+%d -%d) from %s in %.2f s", m.name, rows, delta.inserted, delta.retired, scope, seconds)
    return touched


def _write(s: Session, batch: Delta | None, run: Run, full_refresh: bool) -> Written | None:
    """Write version `run.run_id` from the staged batch (uncommitted until this returns).

    Returns what each model recomputed and merged, or None when nothing changed.
    """
    deltas: dict[str, Delta] = {}
    if batch is not None:
        s.store.append("ingested_files", "batch_files", run.run_id)
        s.store.append("rejected_conversation_events", "batch_rejected", run.run_id)
        deltas["accepted_events"] = batch
    s.wh.materialize("seed_tag_contact_reasons_new", load_tag_contact_reasons(s.env.seeds_dir))
    deltas["seed_tag_contact_reasons"] = s.store.merge(
        "seed_tag_contact_reasons", "seed_tag_contact_reasons_new", key=("tag",), old_filter=None, version=run.run_id
    )
    touched: dict[str, str | None] = {}
    for m in models().values():
        touched[m.name] = _build_model(s, m, deltas, run, full_refresh, touched)
    new_files = batch is not None  # recorded even when all their rows were known: a version to publish
    return Written(touched, deltas) if new_files or any(d.changed for d in deltas.values()) else None


def _stage_changes(s: Session, written: Written, version: int) -> bool:
    """Copies in CHANGES of the rows this build may have changed, for the audit's row-level checks.

    A model's changed rows are its live rows in the partitions it recomputed: a whole partition,
    not only the rows the merge wrote, so that a duplicate key next to an unchanged row is seen
    (a key lies in one partition). Ingestion tables are only appended to: their rows of this
    version. False when every table was rebuilt whole (the audit then checks every row anyway).
    """
    touched = written.touched
    s.wh.execute(f"DROP SCHEMA IF EXISTS {CHANGES} CASCADE")
    if all(t == ALL for t in touched.values()):
        return False
    s.wh.execute(f"CREATE SCHEMA {CHANGES}")
    for name in [*s.store.physical_tables(), *(n for n, m in models().items() if m.materialized == "view")]:
        every_row = f'SELECT * FROM {CANDIDATE}."{name}"'
        if name in INGESTION_TABLES:
            cols = ", ".join(f'"{c}"' for c in s.store.model_columns(name))
            rows = f'TABLE {CHANGES}."{name}" AS SELECT {cols} FROM {STORE}."{name}" WHERE {FROM} = {version}'
        elif touched.get(name, ALL) == ALL:  # rebuilt whole, or a seed (small, merged whole)
            rows = f'VIEW {CHANGES}."{name}" AS {every_row}'
        elif touched[name] is None:
            rows = f'VIEW {CHANGES}."{name}" AS {every_row} WHERE false'
        elif models()[name].materialized == "table":
            rows = f'TABLE {CHANGES}."{name}" AS {s.store.live_rows_after(name, written.deltas[name], version)}'
        else:
            m = models()[name]
            source = every_row
            if all(_reads_recomputed_rows(s, m, i, touched[name], touched.get(i)) for i in m.inputs):
                # Its inputs' changed rows are copied already: compute it from them.
                source = f"SELECT * FROM ({_view_sql(s, m, CHANGES)})"
            in_touched = f'"{m.partition}" IN (SELECT value FROM {WORK}.{touched[name]})'
            rows = f'TABLE {CHANGES}."{name}" AS {source} WHERE {in_touched}'
        # Tables, not views: each check then reads the few changed rows, not the table around them.
        s.wh.execute(f"CREATE {rows}")
    return True


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
    with audit_worker.for_build() as auditor:
        listing = contract.expand(names)
        if not listing.files and not full_refresh:  # a full refresh may rebuild from the staged events alone
            raise ingest.InputError("no input file: none given, and the environment's `inputs` name none")
        _record_ignored(listing.ignored, run)
        _discard_unpublished(s, run)
        _repair_copy(s)
        batch = _stage_inputs(s, listing.files, run)
        with s.wh.transaction():
            written = _write(s, batch, run, full_refresh)
        if written is None:
            run.status, run.message = "noop", "nothing new to load: every input was already ingested"
            run.published_version = s.versions.current_version()
            log.info(run.message)
            return run
        s.store.stage_candidate(run.run_id)
        _create_views(s, CANDIDATE)
        scoped = _stage_changes(s, written, run.run_id)
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
            _create_views(s, PUBLISHED)
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
