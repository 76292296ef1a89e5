"""Small file-system helpers shared by the writers of generated folders."""

from __future__ import annotations

import shutil
from pathlib import Path


def replace_directory(final: Path, building: Path) -> None:
    """Put a freshly built folder in place of the old one with two renames, so readers never see
    a half-written folder (for an instant between the renames it is absent)."""
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    building.rename(final)
    shutil.rmtree(old, ignore_errors=True)
