"""What lets Sphinx rebuild only the pages that changed, and nothing less.

The site's build keeps Sphinx's environment (doctrees) and its HTML output between builds, in
`<reports_dir>/.site-build/`. Each build writes every page source into a scratch folder, then
moves into the kept source folder only the files whose content changed (and removes the files
that are gone), so the others keep their modification time and Sphinx reads only what changed.

Sphinx's own incremental build then re-reads the changed pages and the pages that include a
changed file or image; a change to `conf.py`, Sphinx's configuration, the theme or the code
(`convo_code`, a configuration value) makes it read everything again. What it would not see on its
own, this module makes it see: when a file is added or removed, the build starts over (links
to a page that is gone must fail the build, and its output must go); when a page read again changed its title, its place
in a table of contents or a label another page links to, every page is written again (their
navigation and links are computed at writing).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sphinx.application import Sphinx


def update_sources(written: Path, kept: Path) -> list[str]:
    """Make `kept` hold exactly the files of `written`, touching only those whose content differs;
    `written` is consumed. Returns the paths (relative, sorted) that were added, changed or removed."""
    new = {p.relative_to(written) for p in written.rglob("*") if p.is_file()}
    old = {p.relative_to(kept) for p in kept.rglob("*") if p.is_file()} if kept.is_dir() else set()
    touched = []
    for relative in sorted(new):
        target = kept / relative
        if relative in old and target.read_bytes() == (written / relative).read_bytes():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(written / relative, target)
        touched.append(str(relative))
    for relative in sorted(old - new):
        (kept / relative).unlink()
        touched.append(str(relative))
    shutil.rmtree(written)
    return sorted(touched)


@dataclass
class _Shared:
    """What a page's output depends on beyond its own source: other pages' titles, places in the
    tables of contents, and labels."""

    titles: dict
    toctrees: dict
    labels: dict

    @classmethod
    def of(cls, env) -> _Shared:
        std = env.get_domain("std")
        return cls(
            {name: title.astext() for name, title in env.titles.items()},
            {name: list(entries) for name, entries in env.toctree_includes.items()},
            {**{k: tuple(v) for k, v in std.labels.items()}, **{k: tuple(v) for k, v in std.anonlabels.items()}},
        )


def start_over_unless_same_files(src: Path, work: Path) -> None:
    """Forget the kept build unless `src` holds the same files as at the last build that succeeded:
    Sphinx leaves the output of a removed page in place, and would not read again the pages
    that link to it."""
    listing = work / _LISTING
    if not listing.is_file() or listing.read_text(encoding="utf-8") != _files(src):
        forget(work)


def record_files(src: Path, work: Path) -> None:
    """After a build succeeded: the files it was built from (`start_over_unless_same_files`)."""
    (work / _LISTING).write_text(_files(src), encoding="utf-8")


_LISTING = "sources.txt"


def _files(src: Path) -> str:
    return "".join(f"{p.relative_to(src)}\n" for p in sorted(src.rglob("*")) if p.is_file())


def rebuild_what_changes_reach(app: Sphinx) -> None:
    """Connect the checks above to `app` before it builds."""
    before: list[_Shared] = []

    def outdated(app, env, added, changed, removed):
        before.append(_Shared.of(env))
        return []

    def updated(app, env):
        return env.found_docs if before and _Shared.of(env) != before[0] else []

    app.connect("env-get-outdated", outdated)
    app.connect("env-updated", updated)


def forget(work: Path) -> None:
    """Drop Sphinx's environment and output: after a failed build, the next one reads and writes
    every page (a page whose warning failed this build must fail the next one too)."""
    for kept in ("html", "doctrees"):
        shutil.rmtree(work / kept, ignore_errors=True)
    (work / _LISTING).unlink(missing_ok=True)
