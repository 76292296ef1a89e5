"""A build's input files: which ones are new, what is recorded about each, and their rows staged.

Files are known by their content (SHA-256): a file whose content was ingested before, or given
twice, is recorded as skipped; an entry of an input directory that is not read is recorded as
such; the new files are read by `ingest.py` into scratch tables, and each one's counts recorded
with the run. Nothing is stored yet: the build's evaluation appends the scratch tables.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from pathlib import Path

from convo.build import contract, evaluate, ingest
from convo.build.session import Session
from convo.engine.state import FileRecord, Run
from convo.engine.warehouse import STORE

log = logging.getLogger(__name__)


def record_ignored(entries: list[Path], run: Run) -> None:
    """Entries of an input directory that are not read: said in the log and the run's files."""
    for path in entries:
        action = contract.not_read(path)
        log.warning("%s: %s", path, action)
        run.files.append(FileRecord(None, str(path), None, None, action))


def stage_new_files(
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
    records = [counts[file_id] for file_id in by_id]
    s.wh.execute_many(
        f"INSERT INTO {batch_files.sql} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [[*(getattr(r, c) for c in contract.INGESTED_FILES_SCHEMA.names), run.run_id] for r in records],
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
