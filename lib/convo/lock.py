"""One writer per environment: a second command fails at once instead of waiting or colliding."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from convo.config import ConfigError


class EnvironmentBusy(RuntimeError):
    pass


@contextlib.contextmanager
def exclusive(warehouse: Path, environment: str, command: str) -> Iterator[None]:
    """Hold `<warehouse>.lock` for the duration; the kernel releases it if the process dies."""
    path = warehouse.with_name(warehouse.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except (FileNotFoundError, NotADirectoryError, PermissionError, FileExistsError) as exc:
        raise ConfigError(f"warehouse {warehouse}: cannot create files in {path.parent}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text().strip() or "another process"
            raise EnvironmentBusy(
                f"environment {environment!r} is busy: {holder} holds {path}; try again when it has finished"
            ) from None
        os.ftruncate(fd, 0)
        started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.write(fd, f"`convo {command}` (pid {os.getpid()}, started {started})".encode())
        yield
    finally:
        os.close(fd)
