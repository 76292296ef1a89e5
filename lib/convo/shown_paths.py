"""Paths as published: relative to the project, never the absolute path of the machine that built it.

Reports and the docs site are read elsewhere (another machine, a browser, a CI artefact), where
the builder's home directory or checkout location means nothing and should not be disclosed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def project_path(path: str | os.PathLike, root: Path) -> str:
    """`path` relative to the project root `root`, with `..` when it lies outside it."""
    return Path(os.path.relpath(os.path.abspath(path), root)).as_posix()


def project_paths_in(text: str, root: Path) -> str:
    """`text` (a recorded command, an error message) with the project root's absolute path taken out."""
    prefix = str(root).rstrip(os.sep)
    if not prefix:  # the root is `/`: every path is inside it, and shortening `/` would garble the text
        return text
    # The root itself, or a path inside it; not `/home/project2` when the root is `/home/project`.
    inside = re.compile(re.escape(prefix) + r"(/|(?=[\s'\":;,)\]]|$))")
    return inside.sub(lambda m: "" if m.group(1) else ".", text)
