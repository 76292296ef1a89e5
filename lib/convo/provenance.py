"""Which code and which configuration a run used: recorded with every run, shown by `convo runs`.

The code version is the git commit of the environment's checkout and whether the tree was clean
(no modified, staged or untracked files outside `.gitignore`): a dirty tree means the commit
alone does not say what ran. Outside a git checkout both are unknown (None), never guessed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from convo.config import Environment


@dataclass(frozen=True)
class CodeVersion:
    commit: str | None
    clean: bool | None

    @property
    def label(self) -> str:
        """Short form for listings: the abbreviated commit, `+dirty` when the tree had changes."""
        if self.commit is None:
            return "-"
        return self.commit[:7] + ("" if self.clean else "+dirty")


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def code_version(root: Path) -> CodeVersion:
    commit = _git(root, "rev-parse", "--verify", "HEAD")
    if commit is None:
        return CodeVersion(None, None)
    status = _git(root, "status", "--porcelain")
    return CodeVersion(commit.strip(), None if status is None else status.strip() == "")


def configuration(env: Environment) -> dict:
    """The environment's resolved settings, as JSON-able values (secrets are never in them:
    `notify` holds the name of the variable with the webhook URL, not the URL)."""
    return json.loads(json.dumps(dataclasses.asdict(env), default=str))


def config_digest(config: dict) -> str:
    """A short fingerprint, to see at a glance whether two runs used the same settings."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
