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


def audit_spill_prefix(warehouse: Path) -> str:
    """Name prefix of the folders an audit's DuckDB connections spill to, beside the warehouse."""
    return f"{warehouse.name}.audit-"


def remove_audit_spills(warehouse: Path) -> list[Path]:
    """Remove the spill folders an audit left when it was killed (a finished audit removes its own).

    Only safe while holding the environment's lock: no audit of it can be running then."""
    prefix = audit_spill_prefix(warehouse)
    found = sorted(p for p in warehouse.parent.iterdir() if p.name.startswith(prefix) and p.is_dir()) \
        if warehouse.parent.is_dir() else []
    for folder in found:
        shutil.rmtree(folder)
    return found
