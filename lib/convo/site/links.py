"""Targets of the site's cross-reference roles, shared by the page generator and the Sphinx roles.

`{table}`, `{src}` and `{cli}` link a sentence to the table, file or command that implements it.
The generator makes a page for every target that exists; a target that does not exist (yet: a
piece another issue delivers) is shown as such on the page rather than linked.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from convo.arguments import parser

ROLE = re.compile(r"\{(table|src|cli)\}`([^`]+)`")
PENDING = "not in this checkout yet"


def table_label(table: str) -> str:
    return f"table-{table}"


def cli_label(command: str) -> str:
    return f"cli-{command}"


def source_docname(path: str) -> str:
    """`lib/convo/build/runner.py` -> `source/lib-convo-build-runner-py` (a page of the site)."""
    return "source/" + re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-").lower()


def source_exists(root: Path, path: str) -> bool:
    target = root / path
    return target.is_file() or (target.is_dir() and any(_listed(target)))


def _listed(folder: Path):
    """Files listed for a folder: not hidden, no caches, no compiled files."""
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if path.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in parts) and path.suffix != ".pyc":
            yield path


def listed_files(root: Path, path: str) -> list[Path]:
    target = root / path
    return [target] if target.is_file() else list(_listed(target))


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """The `convo` subcommands, from the command line's own parser."""
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def referenced(text: str, role: str) -> list[str]:
    """Targets of `{role}` in MyST text, in order of first appearance."""
    return list(dict.fromkeys(target for r, target in ROLE.findall(text) if r == role))
