"""The process a build audits in: it ends with the build, however the build ends."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import subprocess
import sys
import time

import pytest

from convo.audit import worker as worker_module
from convo.audit.worker import PROCESS_NAME, AuditProcessFailed, AuditWorker, _portable, for_build

# A build's process that starts its audit worker, says the worker's pid, then waits to be killed.
BUILD = """
import multiprocessing, sys, time
from convo.audit.worker import AuditWorker
if __name__ == "__main__":
    AuditWorker().start()
    print(multiprocessing.active_children()[0].pid, flush=True)
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has ended, once its last thread has (its files are closed then): the main
    # thread of a killed process turns zombie while DuckDB's threads are still exiting.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            zombie = stat.read().split(") ")[1][0] == "Z"
        return not zombie or len(os.listdir(f"/proc/{pid}/task")) > 1
    except FileNotFoundError:  # reaped meanwhile
        return False


def test_a_worker_never_asked_to_audit_ends_when_the_build_closes_it(monkeypatch):
    # A process that imported GX before (another test's audit) audits in place and starts no
    # worker; the worker, a fresh process, imports it whatever this one holds.
    monkeypatch.delitem(sys.modules, worker_module.VALIDATE, raising=False)
    worker = AuditWorker()
    worker.start()
    (child,) = multiprocessing.active_children()
    started = time.monotonic()
    worker.close()  # without waiting for it to finish importing Great Expectations
    assert not child.is_alive() and child.exitcode is not None
    assert time.monotonic() - started < 2


def test_the_worker_dies_with_a_killed_build(tmp_path):
    script = tmp_path / "build.py"
    script.write_text(BUILD)
    build = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker_pid = int(build.stdout.readline())
    # It takes its name once it is set to die with the build, then imports Great Expectations (seconds).
    assert _within(10, lambda: _name(worker_pid) == PROCESS_NAME)
    build.kill()
    build.wait()
    # At once: it would otherwise go on importing, then audit an abandoned version.
    assert _within(1, lambda: not _alive(worker_pid))


def test_an_error_in_the_audit_process_reaches_the_build_with_its_traceback(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, worker_module.VALIDATE, raising=False)  # so that it starts
    unknown = {"type": "expect_what_gx_does_not_know", "kwargs": {}, "description": "d", "meta": {}}
    with for_build(start=True) as worker, pytest.raises(RuntimeError, match="GX loaded 0 of 1") as raised:
        worker.validate(
            warehouse=tmp_path / "w.duckdb",
            schema="main",
            suites=[{"name": "t", "expectations": [unknown]}],
            parameters={},
            run_name="test",
        )
    cause = raised.value.__cause__
    assert isinstance(cause, AuditProcessFailed) and "in the audit process" in str(cause)
    assert "gx_suite" in str(cause)  # its own traceback, from the audit process


def test_the_audit_process_imports_great_expectations_not_the_builds_libraries():
    imported = subprocess.run(
        [sys.executable, "-c", f"import sys, {worker_module.__name__}, {worker_module.VALIDATE}; print(*sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "great_expectations" in imported
    assert not {"ibis", "sqlglot", "convo.engine.state", "convo.build"} & set(imported)


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("not picklable")


def test_an_exception_of_the_audit_that_cannot_travel_to_the_build_arrives_as_its_text():
    with pytest.raises(TypeError):
        pickle.dumps(Unpicklable("x"))
    arrives = _portable(Unpicklable("the reason"))
    assert isinstance(arrives, AuditProcessFailed) and str(arrives) == "Unpicklable: the reason"
    missing = KeyError("missing")
    assert _portable(missing) is missing  # one that travels arrives as itself


def _name(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as comm:
        return comm.read().strip()


def _within(seconds: float, condition) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
