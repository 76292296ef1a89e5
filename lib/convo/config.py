"""Environments: where each one keeps its warehouse, reads its inputs, and whom it alerts.

They are configured in `convo.toml` at the repository root (found from the working directory
upwards, or named by $CONVO_CONFIG). Paths in it are relative to that file.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from convo import event_window
from convo.event_window import EventWindow

CONFIG_NAME = "convo.toml"
# Engines `convo build` can run the models on (README, "Backends").
BACKENDS = ("duckdb", "pyspark")
ENVIRONMENT_NAME = re.compile(r"[A-Za-z0-9_-]+")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Notify:
    webhook_url_env: str | None = None  # name of the environment variable holding the URL
    command: str | None = None  # shell command; the run summary arrives as JSON on stdin


@dataclass(frozen=True)
class Environment:
    name: str
    root: Path
    warehouse: Path
    inputs: tuple[str, ...]
    seeds_dir: Path
    reports_dir: Path
    retain_versions: int
    threads: int
    memory_limit: str
    notify: Notify = field(default_factory=Notify)
    checks: dict = field(default_factory=dict)
    backend: str = "duckdb"
    # Permission bits taken away from what convo creates (warehouse, logs, reports, site): the
    # data is customer data, so by default only the owner may read it (files 0600, folders 0700).
    umask: int = 0o077
    event_window: EventWindow = field(default_factory=EventWindow)  # plausible event times


def find_config(start: Path | None = None) -> Path | None:
    if env := os.environ.get("CONVO_CONFIG"):
        return Path(env)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder / CONFIG_NAME
    return None


def check_name(name: str) -> str:
    """An environment's name goes into file and folder names (warehouse/<env>.duckdb, reports/<env>/),
    so it may hold only letters, digits, `-` and `_`: `../x` must not reach another folder."""
    if not ENVIRONMENT_NAME.fullmatch(name):
        raise ConfigError(f"environment name {name!r} is not allowed: use only letters, digits, '-' and '_'")
    return name


def check_warehouse(path: Path) -> Path:
    """The warehouse file, made absolute so that DuckDB reads its name literally (a relative name
    like `md:x` or `:memory:` would be taken as a protocol or an in-memory database)."""
    text = str(path)
    if odd := next((c for c in text if not c.isprintable()), None):
        raise ConfigError(f"warehouse path {text!r}: holds the control character U+{ord(odd):04X}; rename it")
    if path.is_dir():
        raise ConfigError(f"warehouse path {text}: is a directory; give the warehouse file's path")
    return Path(os.path.abspath(path))


def load(name: str, *, config: Path | None = None, warehouse: Path | None = None) -> Environment:
    check_name(name)
    path = config or find_config()
    if path is None:
        raise ConfigError(f"no {CONFIG_NAME} found in {Path.cwd()} or above (set CONVO_CONFIG to name one)")
    data = tomllib.loads(path.read_text())
    environments = data.get("environments", {})
    if name not in environments:
        raise ConfigError(f"{path}: no environment {name!r}; configured: {', '.join(environments) or 'none'}")
    settings = {**data.get("defaults", {}), **environments[name]}
    backend = settings.get("backend", "duckdb")
    if backend not in BACKENDS:
        raise ConfigError(f"{path}: environment {name!r}: backend {backend!r} is not one of {', '.join(BACKENDS)}")
    try:
        window = event_window.from_settings(settings.get("event_window", {}))
    except ValueError as exc:
        raise ConfigError(f"{path}: environment {name!r}: {exc}") from None
    root = path.parent.resolve()
    umask = _umask(settings.get("umask", "077"), f"{path}: environment {name!r}")
    warehouse_dir = root / settings.get("warehouse_dir", "warehouse")
    return Environment(
        name=name,
        root=root,
        warehouse=check_warehouse(warehouse or root / settings.get("warehouse", warehouse_dir / f"{name}.duckdb")),
        inputs=tuple(str(root / p) for p in settings.get("inputs", [])),
        seeds_dir=root / settings.get("seeds_dir", "seeds"),
        reports_dir=root / settings.get("reports_dir", "reports"),
        retain_versions=int(settings.get("retain_versions", 5)),
        threads=int(settings.get("threads", 2)),
        memory_limit=str(settings.get("memory_limit", "4GB")),
        notify=Notify(**settings.get("notify", {})),
        checks=dict(settings.get("checks", {})),
        backend=backend,
        umask=umask,
        event_window=window,
    )


def _umask(value, where: str) -> int:
    """`umask = "077"` (octal, as the shell's umask); the owner must keep read and write."""
    text = str(value)
    if not re.fullmatch(r"0?[0-7]{3}", text):
        raise ConfigError(f'{where}: umask {value!r} is not three octal digits such as "077" or "027"')
    mask = int(text, 8)
    if mask & 0o600:
        raise ConfigError(f"{where}: umask {value!r} would take read or write access from the owner")
    return mask
