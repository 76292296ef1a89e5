"""A build's audit in a process of its own, started as soon as the build has something new.

Importing Great Expectations takes seconds of pure Python. In the build's process it would delay
the audit by as long (or, in a thread, hold the GIL that the build's own Python needs). In a
process of its own it runs alongside the build and is usually done by the time the audit starts
(BENCHMARKS.md, "What the audit's machinery saves"). The process opens the warehouse only for
the audit, while the build has released it, hands back GX's results, its log lines and any
exception with its traceback, and dies with the build, however the build ends. It validates and
nothing else: the build prepares the suites and their parameters and makes the check records, so
this process imports Great Expectations and not the build's own libraries (Ibis among them).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection

log = logging.getLogger(__name__)
PROCESS_NAME = "convo-audit"  # as ps and top show it
VALIDATE = "convo.audit.validate"  # the module that imports Great Expectations
PR_SET_PDEATHSIG, PR_SET_NAME = 1, 15  # prctl(2)


class AuditProcessFailed(RuntimeError):
    """The audit process's own traceback, chained to the exception it raised."""


def worth_starting() -> bool:
    """Whether a worker would hide anything: not in a process that has imported GX already (a
    notebook kernel or a test session that audited before), where the audit then runs in place."""
    return VALIDATE not in sys.modules


@contextlib.contextmanager
def for_build(*, start: bool) -> Iterator[AuditWorker]:
    """A worker for one build, always closed (a build that ends without an audit, nothing new to
    load or a busy environment, ends it). Started at once if `start`, else when the build calls
    `start` (once it knows it has something new to audit): GX's import is seconds of CPU that a
    build with nothing new should not spend."""
    worker = AuditWorker()
    if start:
        worker.start()
    try:
        yield worker
    finally:
        worker.close()


class AuditWorker:
    """A child process for one build's audit: `start` it early (it imports GX), `validate` there
    later (once), and always `close` it. Not started, `validate` runs in this process."""

    def __init__(self) -> None:
        self._process: multiprocessing.process.BaseProcess | None = None
        self._connection: Connection | None = None
        self._answered = False

    def start(self) -> None:
        """Start the process, unless it runs already or would hide nothing (`worth_starting`)."""
        if self._process is not None or not worth_starting():
            return
        # spawn, not fork: the build's process holds DuckDB's threads and an open warehouse. Not a
        # daemon, so that `close` decides when it ends, and `_end_with_build` if the build is killed.
        context = multiprocessing.get_context("spawn")
        self._connection, child_end = context.Pipe()
        self._process = context.Process(target=_serve, args=(child_end, os.getpid()), name=PROCESS_NAME)
        self._process.start()
        child_end.close()
        log.info("audit process started: it imports Great Expectations alongside the build")

    @property
    def started(self) -> bool:
        """Whether `validate` runs in the worker's process (else in this one)."""
        return self._process is not None

    def validate(self, **kwargs) -> dict[str, list[dict]]:
        """`validate.validate(**kwargs)` in the worker (in this process if it was not started); its
        log lines are logged here, and its exception is raised here, chained to its traceback."""
        if not self.started:
            return importlib.import_module(VALIDATE).validate(**kwargs)
        self._connection.send(kwargs)
        try:
            result, error, logged = self._connection.recv()
        except EOFError:
            self._process.join()
            raise AuditProcessFailed(
                f"the audit process ended without an answer (exit code {self._process.exitcode})"
            ) from None
        finally:
            self._answered = True
        for fields in logged:  # at the level this process logs
            logger = logging.getLogger(fields["name"])
            if logger.isEnabledFor(fields["levelno"]):
                logger.handle(logging.makeLogRecord(fields))
        if error is not None:
            exc, remote_traceback = error
            raise exc from AuditProcessFailed(f"in the audit process:\n{remote_traceback}")
        return result

    def close(self) -> None:
        """Stop the worker; at once unless it has answered (the build ended or was interrupted)."""
        if self._process is None:
            return
        self._connection.close()
        if not self._answered:
            self._process.kill()
        self._process.join()


def _serve(connection: Connection, build_pid: int) -> None:
    _end_with_build(build_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the build, which then ends this
    logged = _LogCollector.install()
    started = time.perf_counter()
    validate = importlib.import_module(VALIDATE).validate
    # GX opens a (disabled) tqdm bar per suite. tqdm's default lock holds a multiprocessing
    # semaphore, which this process, leaving by os._exit, would leave to the resource tracker's
    # "leaked semaphore" warning at the end of every build; one audit needs only a thread lock.
    from tqdm import tqdm  # GX's progress bars

    tqdm.set_lock(threading.RLock())
    log.info("audit process: Great Expectations imported in %.1f s, alongside the build", time.perf_counter() - started)
    try:
        kwargs = connection.recv()
    except EOFError:  # the build ended without an audit
        os._exit(0)
    try:
        reply = (validate(**kwargs), None, logged.records)
    except BaseException as exc:
        reply = (None, (_portable(exc), traceback.format_exc()), logged.records)
    connection.send(reply)
    connection.close()
    os._exit(0)  # skips tearing down GX's modules, a second or more


def _end_with_build(build_pid: int) -> None:
    """Die when the build does, even by SIGKILL: an audit left behind would hold the warehouse
    open, and the next build could not open it. Then take the name ps and top show. (Linux;
    elsewhere the build ends its worker when it leaves normally.)"""
    libc = ctypes.CDLL(None) if sys.platform.startswith("linux") else None
    if libc:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != build_pid:  # it died before prctl
        os._exit(1)
    if libc:
        libc.prctl(PR_SET_NAME, PROCESS_NAME.encode())


class _LogCollector(logging.Handler):
    """Keeps the worker's log records (of the `convo` loggers), as fields that pickle, for the build."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[dict] = []

    @classmethod
    def install(cls) -> _LogCollector:
        collector = cls()
        logger = logging.getLogger("convo")
        logger.addHandler(collector)
        logger.setLevel(logging.DEBUG)  # the build filters what it logs again
        return collector

    def emit(self, record: logging.LogRecord) -> None:
        fields = {**record.__dict__, "msg": record.getMessage(), "args": None, "exc_info": None}
        if record.exc_info:
            fields["exc_text"] = logging.Formatter().formatException(record.exc_info)
        self.records.append(fields)


def _portable(exc: BaseException) -> BaseException:
    """`exc`, or its text if it would not survive the trip to the build."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return AuditProcessFailed(f"{type(exc).__name__}: {exc}")
