"""The `convo` command line: its commands and options, apart from what they do (`convo.cli`).

A base module, so that the site can document the commands from the parser itself without
importing the CLI, which imports everything.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from convo import config

DESCRIPTION = "`convo`: build, check, run and document the conversation warehouse."


def _env_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="dev", help="environment from convo.toml (default: dev)")
    p.add_argument("--warehouse", type=Path, help="warehouse file (default: the environment's, warehouse/<env>.duckdb)")
    p.add_argument("--config", type=Path, help="config file (default: convo.toml found from the working directory up)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convo", description=DESCRIPTION)
    p.add_argument("-v", "--verbose", action="store_true", help="log every step (DEBUG)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser(
        "build",
        help="ingest event files and build the warehouse (incremental by default)",
        description="Ingest EVENTS_FILEs (CSV, .csv.gz or Parquet; files or directories, names taken"
        " literally; default: the"
        " environment's inputs), recompute what they change, audit, and publish atomically.",
    )
    _env_options(b)
    b.add_argument("--full-refresh", action="store_true", help="recompute every table from all ingested events")
    b.add_argument(
        "--backend",
        choices=config.BACKENDS,
        help="engine (default: the environment's `backend`, else duckdb); pyspark runs a full build"
        " with Spark in local mode into Parquet folders <warehouse dir>/<env>-pyspark/<table>/:"
        " no versions, audits or publishing",
    )
    b.add_argument("files", nargs="*", metavar="EVENTS_FILE")

    c = sub.add_parser("check", help="run every data-quality check on the published version")
    _env_options(c)

    r = sub.add_parser("rollback", help="publish the previous (or a named) version again")
    _env_options(r)
    r.add_argument("--to", type=int, metavar="RUN_ID", help="version to publish (default: the one before the current)")

    h = sub.add_parser("runs", help="list the environment's run history")
    _env_options(h)
    h.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")

    n = sub.add_parser(
        "run",
        help="the main job: build, then the report notebooks with papermill, then the site",
        description="Build from EVENTS_FILEs (default: the environment's inputs) as `convo build` does,"
        " then execute notebooks/NN_*.py (the first shows what the build did, the others report on the"
        " published version), then build the site. Executed notebooks and their HTML go to"
        " reports/<env>/<stamp>/; reports/<env>/latest points at the last success.",
    )
    _env_options(n)
    n.add_argument(
        "--date",
        type=datetime.date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="logical date of the run, given to the notebooks (default: today, UTC, for an environment"
        " that sets checks.freshness_max_age_hours; otherwise none: ages and freshness are measured"
        " at the end of the data)",
    )
    n.add_argument("--full-refresh", action="store_true", help="recompute every table from all ingested events")
    n.add_argument("files", nargs="*", metavar="EVENTS_FILE")

    d = sub.add_parser(
        "docs",
        help="build the documentation site into reports/site/",
        description="Generate the site's pages from the model metadata and the environment's"
        " warehouse, add the hand-written pages of site/, and build them with Sphinx into"
        " reports/site/. Any broken link or reference fails the build.",
    )
    _env_options(d)

    return p
