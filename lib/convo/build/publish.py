"""The readers' copy of the published version (`engine/published_copy.py`), as a build, a rollback
and a repair write it.

`copy_beside` writes a build's copy while its audit runs in the audit process; `publishing_copy`
wraps the store's publish: the copy of the version is written before (unless the audit's time
was used for it), swapped in after, and removed if the publish fails, so readers keep the file
they had. `repair_copy` rewrites a copy that is missing or behind the published version.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from convo.build.session import Session
from convo.engine import published_copy
from convo.models.registry import models, table_docs

log = logging.getLogger(__name__)


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


def discard_copy(s: Session) -> None:
    """Remove a readers' copy written for a version that will not be published."""
    published_copy.discard(s.env.warehouse)


@dataclass
class CopyBeside:
    """What `copy_beside` gives its body, and what it leaves after."""

    reader: duckdb.DuckDBPyConnection | None  # the body's way into the warehouse (None: open the file)
    written: Path | None = None  # the readers' copy, once written


@contextlib.contextmanager
def copy_beside(s: Session, version: int, *, concurrently: bool) -> Iterator[CopyBeside]:
    """Let the body (an audit) open the warehouse, and if `concurrently`, write the readers' copy of
    `version` meanwhile.

    Concurrently, the build and the audit's process both hold the file read-only, as DuckDB allows,
    and the body reads it through `reader`: for an audit that validates in a process of its own,
    whose GX would otherwise wait for the copy's seconds of DuckDB. Else the file is closed for the
    body (a GX in this process opens it with settings of its own, which DuckDB refuses beside this
    connection), and `publishing_copy` writes the copy after. If the body fails, the copy is stopped
    and removed.
    """
    if not concurrently:
        with s.wh.released():
            yield CopyBeside(reader=None)
        return
    with s.wh.read_only_meanwhile():
        outcome: dict[str, Path | BaseException] = {}

        def write() -> None:
            try:
                outcome["written"] = _write_copy(s, version)
            except BaseException as exc:  # re-raised in the build's thread
                outcome["error"] = exc

        writer = threading.Thread(target=write, name="convo-readers-copy")
        copy = CopyBeside(reader=s.wh.con.con.cursor())
        writer.start()
        body_failed = True
        try:
            yield copy
            body_failed = False
        finally:
            if body_failed:
                s.wh.con.con.interrupt()  # the connection is closed after: the flag dies with it
            copy.reader.close()
            writer.join()
            if body_failed or "written" not in outcome:
                discard_copy(s)
        if "error" in outcome:
            raise outcome["error"]
        copy.written = outcome["written"]


@contextlib.contextmanager
def publishing_copy(s: Session, version: int, written: Path | None = None) -> Iterator[None]:
    """Write the readers' copy of `version` (unless `written` holds it already), run the body (which
    publishes it in the store), swap the copy in. If the body fails, the copy is removed and readers
    keep the file they had."""
    written = written or _write_copy(s, version)
    try:
        yield
    except BaseException:
        discard_copy(s)
        raise
    published_copy.swap(written, s.env.warehouse)


def repair_copy(s: Session) -> None:
    """Rewrite the readers' copy if it is missing or behind the published version (a warehouse from
    before the copies, or a process stopped between publishing and swapping)."""
    current = s.versions.current_version()
    if current and published_copy.version_in(s.env.warehouse) != current:
        log.info("the readers' copy is not version %d: writing it", current)
        with publishing_copy(s, current):
            pass
