"""A build's session and its run record: what every command that changes or checks an environment
opens first.

- `session`: the environment's lock, its warehouse, store, run log and versions, open for the
  command; runs an earlier command left part-way are marked failed and alerted here;
- `recorded`: the command's row in the run history and its log file
  (`warehouse/logs/<env>/run-NNNNNN.log`); a failed run is marked failed, says why and alerts.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from convo import notify, provenance
from convo.config import Environment
from convo.engine.state import Run, RunLog, Versions
from convo.engine.store import Store
from convo.engine.warehouse import Warehouse
from convo.files import created_with
from convo.lock import exclusive

log = logging.getLogger(__name__)


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
