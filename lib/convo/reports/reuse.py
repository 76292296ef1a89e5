"""Reports that need not run again: a content-keyed cache, as make's targets or dbt's state.

A report notebook reads the published version and nothing that changes while that version stays
published (`reporting.version_header` says which version; the build's records are fixed once it
published). So a report whose inputs are all unchanged is the same document, and `convo run`
copies it from the last run whose reports all succeeded (`reports/<env>/latest`) instead of
executing it again. Its inputs, recorded in the executed notebook's metadata (`convo_inputs`):

- the published version, and when the build that wrote it started (a warehouse deleted and built
  again starts its versions at 1 again);
- the notebook's source text;
- the parameters it is given (a notebook that declares `run_id` shows this run: never reused);
- the code: every file of the `convo` package, and the installed distributions and their
  versions, and the Python version;
- the environment's resolved configuration.

Anything else differs, or the earlier notebook is missing or has no recorded inputs, and the
notebook runs. `convo run --full-refresh` reuses nothing.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import shutil
import sys
from functools import cache
from pathlib import Path

import convo
from convo import provenance
from convo.config import Environment
from convo.reports import reads

METADATA_KEY = "convo_inputs"
SHOWS_THIS_RUN = "run_id"  # a notebook declaring this parameter reports on the run itself
# What a run writes per notebook besides the executed .ipynb (notebooks.py: render_html, reads).
COMPANIONS = (".html", ".code.html", reads.SUFFIX)


def reusable(declared_parameters) -> bool:
    """Whether a notebook can be reused at all: one that shows this run cannot."""
    return SHOWS_THIS_RUN not in declared_parameters


def inputs(
    source: Path,
    parameters: dict,
    env: Environment,
    published_version: int,
    built_at: datetime.datetime,
) -> dict:
    """Everything a report's executed output is a function of, as JSON values."""
    return {
        "published_version": published_version,
        "built_at": built_at.isoformat(),
        "notebook_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "parameters": {k: v for k, v in sorted(parameters.items()) if k != SHOWS_THIS_RUN},
        "code_sha256": code_digest(),
        "configuration_sha256": hashlib.sha256(
            json.dumps(provenance.configuration(env), sort_keys=True).encode()
        ).hexdigest(),
    }


@cache
def code_digest() -> str:
    """The digest of the code a kernel runs (`digest_of` the `convo` package), once per process:
    the code does not change while a run holds its lock."""
    return digest_of(Path(convo.__file__).parent)


def digest_of(package: Path) -> str:
    """One digest of a package's files, the installed distributions and their versions, and Python's."""
    digest = hashlib.sha256(sys.version.encode())
    for path in sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(f"\0{path.relative_to(package)}\0".encode())
        digest.update(path.read_bytes())
    installed = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions())
    digest.update("\0".join(installed).encode())
    return digest.hexdigest()


def recorded_inputs(notebook: Path) -> dict | None:
    """The inputs an executed notebook was made from, or None (missing, unreadable, not recorded)."""
    try:
        return json.loads(notebook.read_text(encoding="utf-8"))["metadata"].get(METADATA_KEY)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def earlier_report(previous_folder: Path | None, stem: str, key: dict) -> Path | None:
    """The executed notebook `stem` of `previous_folder` if it was made from exactly `key` and
    everything rendered from it is there; otherwise None."""
    if previous_folder is None:
        return None
    notebook = previous_folder / f"{stem}.ipynb"
    if recorded_inputs(notebook) != key:
        return None
    if not all(notebook.with_suffix(suffix).is_file() for suffix in COMPANIONS):
        return None
    return notebook


def copy_report(earlier: Path, folder: Path) -> Path:
    """Copy an earlier executed notebook and what was rendered from it into `folder`; returns the copy."""
    for suffix in (".ipynb", *COMPANIONS):
        shutil.copyfile(earlier.with_suffix(suffix), folder / earlier.with_suffix(suffix).name)
    return folder / earlier.name
