"""Child processes of an audit: they hand back results, errors and log lines, and end with their parent."""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import time

import pytest

from convo.audit import child
from convo.audit.validate import _Turns
from test_audit_worker import _alive, _within

# A parent that forks a child which never ends, says the child's pid, then waits to be killed.
PARENT = """
import multiprocessing, os, time
from convo.audit import child
with child.forked([lambda: time.sleep(600)], "convo-test") as children:
    time.sleep(0.5)  # the child sets itself to die with this process first thing
    print(multiprocessing.active_children()[0].pid, flush=True)
    time.sleep(600)
"""


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("not picklable")


def test_a_forked_child_returns_its_result_and_its_log_lines(caplog):
    caplog.set_level(logging.INFO, logger="convo")

    def work():
        logging.getLogger("convo.test").info("working in %d", os.getpid())
        return {"answer": 42}

    with child.forked([work], "convo-test") as (worker,):
        assert worker.result() == {"answer": 42}
    (line,) = [r for r in caplog.records if r.name == "convo.test"]
    assert line.getMessage() != f"working in {os.getpid()}"  # logged by the child, logged again here


def test_a_forked_childs_exception_is_raised_in_the_parent_with_the_childs_traceback():
    def fail():
        raise KeyError("missing")

    with child.forked([fail], "convo-test") as (worker,), pytest.raises(KeyError) as raised:
        worker.result()
    assert isinstance(raised.value.__cause__, child.ChildFailed)
    assert "in process convo-test-1" in str(raised.value.__cause__) and "in fail" in str(raised.value.__cause__)


def test_an_exception_that_cannot_travel_arrives_as_its_text():
    with pytest.raises(TypeError):
        pickle.dumps(Unpicklable("x"))

    def fail():
        raise Unpicklable("the reason")

    with (
        child.forked([fail], "convo-test") as (worker,),
        pytest.raises(child.ChildFailed, match="Unpicklable: the reason"),
    ):
        worker.result()


def test_children_not_asked_for_their_result_end_with_the_block():
    started = time.monotonic()
    with child.forked([lambda: time.sleep(600)], "convo-test") as (worker,):
        pid = worker._process.pid
    assert not _alive(pid) and time.monotonic() - started < 2


def test_a_forked_child_dies_with_its_killed_parent(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    assert _within(1, lambda: not _alive(child_pid))


def test_processes_sharing_turns_each_take_different_ones_and_together_all():
    def take(turns: _Turns) -> list[int]:
        taken = []
        for number in turns:
            taken.append(number)
            time.sleep(0.001)  # let the others take some
        return taken

    with _Turns(200) as turns, child.forked([lambda: take(turns)] * 2, "convo-test") as others:
        mine = take(turns)
        theirs = [other.result() for other in others]
    with pytest.raises(OSError):  # the pipe is closed
        os.fstat(turns._read)
    everyone = mine + theirs[0] + theirs[1]
    assert sorted(everyone) == list(range(200))
    assert all(len(taken) > 0 for taken in (mine, *theirs))
