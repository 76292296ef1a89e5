"""Small file-system helpers shared by the writers of generated folders."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def created_with(umask: int) -> Iterator[None]:
    """Files and folders created inside get the permissions `umask` leaves (the process's umask,
    which the processes it starts inherit); the previous umask comes back after."""
    previous = os.umask(umask)
    try:
        yield
    finally:
        os.umask(previous)


def copy_contents(source: Path, dest: Path, *, skip: tuple[str, ...] = ()) -> None:
    """Copy a folder's files, contents only: unlike shutil.copytree, which copies the permissions
    of the checkout, what is created gets the process's umask. Entries named in `skip` are left out."""
    dest.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.name in skip:
            continue
        if entry.is_dir():
            copy_contents(entry, dest / entry.name, skip=skip)
        else:
            shutil.copyfile(entry, dest / entry.name)


def replace_directory(final: Path, building: Path) -> None:
    """Put a freshly built folder in place of the old one with two renames, so readers never see
    a half-written folder (for an instant between the renames it is absent)."""
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    building.rename(final)
    shutil.rmtree(old, ignore_errors=True)
