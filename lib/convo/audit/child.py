"""Child processes that end with their parent and hand back a result, or the exception they raised.

Used for audits: the build's audit process (`convo.audit.worker`, spawned) and the processes it
forks to share out the suites (`convo.audit.validate`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection

PR_SET_PDEATHSIG, PR_SET_NAME = 1, 15  # prctl(2)


class ChildFailed(RuntimeError):
    """A child's own traceback, chained to the exception it raised."""


def end_with_parent(parent_pid: int, name: str | None = None) -> None:
    """Die when the parent does, even by SIGKILL: an audit left behind would hold the warehouse
    open, and the next build could not open it. Then take `name`, as ps and top show it. (Linux;
    elsewhere the parent ends its children when it leaves normally.)"""
    libc = ctypes.CDLL(None) if sys.platform.startswith("linux") else None
    if libc:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # it died before prctl
        os._exit(1)
    if libc and name:
        libc.prctl(PR_SET_NAME, name.encode())


class LogCollector(logging.Handler):
    """Keeps a child's log records (of the `convo` loggers), as fields that pickle, for its parent."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[dict] = []

    @classmethod
    def install(cls) -> LogCollector:
        """A collector, alone on the `convo` logger: a forked child drops its parent's."""
        logger = logging.getLogger("convo")
        for inherited in [h for h in logger.handlers if isinstance(h, cls)]:
            logger.removeHandler(inherited)
        collector = cls()
        logger.addHandler(collector)
        logger.setLevel(logging.DEBUG)  # the parent filters what it logs again
        return collector

    def emit(self, record: logging.LogRecord) -> None:
        fields = {**record.__dict__, "msg": record.getMessage(), "args": None, "exc_info": None}
        if record.exc_info:
            fields["exc_text"] = logging.Formatter().formatException(record.exc_info)
        self.records.append(fields)


def answer(connection: Connection, call: Callable[[], object], logged: LogCollector) -> None:
    """Send the parent `call()`'s result, or the exception it raised with its traceback, and the
    child's log records."""
    try:
        reply = (call(), None, logged.records)
    except BaseException as exc:
        reply = (None, (_portable(exc), traceback.format_exc()), logged.records)
    connection.send(reply)
    connection.close()


def receive(connection: Connection, process: multiprocessing.process.BaseProcess, what: str):
    """The result `answer` sent, after logging the child's records here (at the time the child
    logged them); the child's exception is raised here, chained to its traceback."""
    try:
        result, error, logged = connection.recv()
    except EOFError:
        process.join()
        raise ChildFailed(f"{what} ended without an answer (exit code {process.exitcode})") from None
    for fields in logged:
        logger = logging.getLogger(fields["name"])
        if logger.isEnabledFor(fields["levelno"]):
            logger.handle(logging.makeLogRecord(fields))
    if error is not None:
        exc, remote_traceback = error
        raise exc from ChildFailed(f"in {what}:\n{remote_traceback}")
    return result


def _portable(exc: BaseException) -> BaseException:
    """`exc`, or its text if it would not survive the trip to the parent."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return ChildFailed(f"{type(exc).__name__}: {exc}")


class Child:
    """A child process running `target(connection, parent_pid, *args)`, and the parent's end of its
    pipe: `send` it work, take its `result` (once), and always `close` it."""

    def __init__(
        self, start_method: str, target: Callable, args: tuple, name: str, *, daemon: bool, what: str | None = None
    ):
        context = multiprocessing.get_context(start_method)
        self._what = what or f"process {name}"
        self._connection, child_end = context.Pipe()
        self._process = context.Process(target=target, args=(child_end, os.getpid(), *args), name=name, daemon=daemon)
        self._process.start()
        child_end.close()
        self._answered = False

    def send(self, message: object) -> None:
        self._connection.send(message)

    def result(self):
        try:
            return receive(self._connection, self._process, self._what)
        finally:
            self._answered = True

    def close(self) -> None:
        """End the child; at once unless it has answered (the parent failed or was interrupted)."""
        self._connection.close()
        if not self._answered:
            self._process.kill()
        self._process.join()


@contextlib.contextmanager
def forked(calls: list[Callable[[], object]], name: str) -> Iterator[list[Child]]:
    """Each call run in a child forked from this process, while this process does its own share;
    every child is ended on the way out. Fork only from a process without state a copy must not
    share: no open database, no threads doing work."""
    children: list[Child] = []
    try:
        for i, call in enumerate(calls, start=1):
            children.append(Child("fork", _run, (call, f"{name}-{i}"), f"{name}-{i}", daemon=True))
        yield children
    finally:
        for c in children:
            c.close()


def _run(connection: Connection, parent_pid: int, call: Callable[[], object], name: str) -> None:
    end_with_parent(parent_pid, name)
    answer(connection, call, LogCollector.install())
    os._exit(0)  # a copy of its parent: skip tearing down what it inherited
