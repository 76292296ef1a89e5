"""The readers' copy of the published version (`engine/published_copy.py`), as a build, a rollback
and a repair write it.

`publishing_copy` wraps the store's publish: the copy of the version is written before, swapped in
after, and removed if the publish fails, so readers keep the file they had. `repair_copy` rewrites
a copy that is missing or behind the published version.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

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


@contextlib.contextmanager
def publishing_copy(s: Session, version: int) -> Iterator[None]:
    """Write the readers' copy of `version`, run the body (which publishes it in the store), swap the
    copy in. If the body fails, the copy is removed and readers keep the file they had."""
    written = _write_copy(s, version)
    try:
        yield
    except BaseException:
        published_copy.discard(s.env.warehouse)
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
