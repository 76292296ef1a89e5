"""A build's audit in a process of its own, started as the build starts.

Importing Great Expectations takes seconds of pure Python. In a thread of the build's process it
would hold the GIL that the build's own Python (compiling models, driving DuckDB) needs, and the
build would slow by about as long as the import takes. In its own process it only shares the
CPUs, and it is usually done by the time the audit starts. (At a lower CPU priority it was starved while
the build kept both cores busy, and the audit then waited for it.) The worker opens the warehouse
only for the audit, while the build has released it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection

from convo.audit import checks as audit
from convo.audit import child
from convo.engine.state import CheckRecord

log = logging.getLogger(__name__)
PROCESS_NAME = "convo-audit"  # as ps and top show it
VALIDATE = "convo.audit.validate"  # the module that imports Great Expectations


def worth_starting() -> bool:
    """Whether a worker would hide anything: not in a process that has imported GX already (a
    notebook kernel or a test session that audited before), where the audit then runs in place."""
    return VALIDATE not in sys.modules


@contextlib.contextmanager
def for_build() -> Iterator[AuditWorker]:
    """A worker for one build, started at once where that hides GX's import; always closed
    (a build that ends without an audit, nothing new to load or a busy environment, ends it)."""
    worker = AuditWorker()
    if worth_starting():
        worker.start()
    try:
        yield worker
    finally:
        worker.close()


class AuditWorker:
    """A child process for one build's audit: `start` it early (it imports GX), `run` the audit
    there later (once), and always `close` it. Not started, `run` audits in this process."""

    def __init__(self) -> None:
        self._child: child.Child | None = None

    def start(self) -> None:
        # spawn, not fork: the build's process holds DuckDB's threads and an open warehouse. Not a
        # daemon, which may not fork: `close` and `end_with_parent` see to its end instead.
        self._child = child.Child("spawn", _serve, (), PROCESS_NAME, daemon=False, what="the audit process")

    def run(self, *args, **kwargs) -> list[CheckRecord]:
        """`audit.run(*args, **kwargs)` in the worker; its log lines are logged here."""
        if self._child is None:
            return audit.run(*args, **kwargs)
        self._child.send((args, kwargs))
        return self._child.result()

    def close(self) -> None:
        """Stop the worker; at once unless it has answered (the build ended or was interrupted)."""
        if self._child is not None:
            self._child.close()


def _serve(connection: Connection, build_pid: int) -> None:
    child.end_with_parent(build_pid, PROCESS_NAME)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the build, which then ends this
    logged = child.LogCollector.install()
    started = time.perf_counter()
    # GX imports pyspark where it is installed (the `spark` extra), for Spark data sources: half a
    # second of CPU taken from the build. An audit reads the warehouse in SQL only.
    sys.modules["pyspark"] = None  # `import pyspark` raises ImportError, which GX expects
    importlib.import_module(VALIDATE)
    # GX opens a (disabled) tqdm bar per suite. tqdm's default lock holds a multiprocessing
    # semaphore, which this process, leaving by os._exit, would leave to the resource tracker's
    # "leaked semaphore" warning at the end of every build; one audit needs only a thread lock.
    from tqdm import tqdm  # GX's progress bars

    tqdm.set_lock(threading.RLock())
    log.info("audit process: Great Expectations imported in %.1f s, alongside the build", time.perf_counter() - started)
    try:
        args, kwargs = connection.recv()
    except EOFError:  # the build ended without an audit
        os._exit(0)
    # This process holds nothing a fork must not copy, so it shares the suites out between
    # processes, one per core the environment may use: GX validates mostly in Python.
    processes = kwargs["env"].threads if kwargs.get("env") else 1
    child.answer(connection, functools.partial(audit.run, *args, processes=processes, **kwargs), logged)
    os._exit(0)  # skips tearing down GX's modules, a second or more
