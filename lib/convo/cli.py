"""`convo`: build, check, run and document the conversation warehouse."""

from __future__ import annotations

import argparse
import datetime
import errno
import logging
import os
import sys
from pathlib import Path

from convo import config

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_BUSY = 1, 2, 3


def _env_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="dev", help="environment from convo.toml (default: dev)")
    p.add_argument("--warehouse", type=Path, help="warehouse file (default: the environment's, warehouse/<env>.duckdb)")
    p.add_argument("--config", type=Path, help="config file (default: convo.toml found from the working directory up)")


def _environment(args: argparse.Namespace) -> config.Environment:
    env = config.load(args.env, config=args.config, warehouse=args.warehouse)
    os.umask(env.umask)  # for all this process and the ones it starts create (kernels, Spark, Sphinx)
    return env


def _print_checks(checks) -> None:
    """One line per failed check and per kind of skipped check, then the totals."""
    failed = [c for c in checks if not c.success]
    skipped = [c for c in checks if c.result.get("skipped")]
    for c in failed:
        count = f"{c.unexpected_count:,} failing" if c.unexpected_count is not None else "failed"
        detail = f" e.g. {c.sample}" if c.sample else f" ({c.reason})" if c.reason else ""
        print(f"  [{c.severity}] {c.table_name}: {c.check_name}: {count}{detail}")
    tables_by_check: dict[tuple[str, str], list[str]] = {}
    for c in skipped:
        tables_by_check.setdefault((c.check_name, c.result["reason"]), []).append(c.table_name)
    for (check, why), tables in tables_by_check.items():
        print(f"  [skipped] {', '.join(tables)}: {check}: {why}")
    if checks:
        errors = sum(c.severity == "error" for c in failed)
        print(
            f"  checks: {len(checks) - len(skipped):,} run, {len(failed):,} failed ({errors:,} error,"
            f" {len(failed) - errors:,} warn), {len(skipped):,} skipped"
        )


def _print_run(run) -> None:
    for f in run.files:
        if f.action == "ingested":
            print(
                f"  {f.path}: {f.rows_read:,} rows read = {f.rows_staged:,} staged + {f.rows_rejected:,} rejected"
                f" + {f.duplicates_removed:,} duplicates"
            )
        else:
            print(f"  {f.path}: {f.action}")
    if run.tables:
        width = max(len(t.table_name) for t in run.tables)
        print(f"  {'table':<{width}}  {'rows':>12}  {'inserted':>10}  {'retired':>10}  seconds")
        for t in run.tables:
            print(f"  {t.table_name:<{width}}  {t.rows:>12,}  {t.inserted:>10,}  {t.retired:>10,}  {t.seconds:7.2f}")
    _print_checks(run.checks)
    print(
        f"run {run.run_id}: {run.status}"
        + (f" ({run.message})" if run.message else "")
        + (f"; published version {run.published_version}" if run.published_version else "")
    )


def cmd_build(args: argparse.Namespace) -> int:
    from convo.build import runner

    env = _environment(args)
    if (args.backend or env.backend) == "pyspark":
        from convo.backends import spark

        print("\n".join(spark.build(env, args.files).summary()))
        return 0
    try:
        run = runner.build(env, args.files, full_refresh=args.full_refresh)
    except runner.BuildFailed as exc:
        _print_run(exc.run)
        return EXIT_FAILED
    _print_run(run)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from convo.build import runner

    env = _environment(args)
    run = runner.check(env)
    _print_run(run)
    print(f"data docs: {env.reports_dir / env.name / 'data_docs' / 'index.html'}")
    return EXIT_FAILED if run.status == "failed" else 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from convo.build import runner

    _print_run(runner.rollback(_environment(args), args.to))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from convo.engine import state
    from convo.provenance import CodeVersion

    with state.read_only(_environment(args).warehouse) as history:
        runs = history.runs(args.limit)
    print(
        f"{'run':>5}  {'status':<8}  {'version':>7}  {'code':<13}  {'started (UTC)':<19}  {'seconds':>7}"
        "  command / message"
    )
    for r in runs:
        seconds = f"{r.seconds:7.1f}" if r.finished_at else "      -"
        text = r.command + (f"  -- {r.message}" if r.message else "")
        code = CodeVersion(r.code_commit, r.code_clean).label
        print(
            f"{r.run_id:>5}  {r.status:<8}  {r.published_version or '-':>7}  {code:<13}"
            f"  {r.started_at:%Y-%m-%d %H:%M:%S}  {seconds}  {text}"
        )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from convo.reports import notebooks

    report = notebooks.run(
        _environment(args), args.files, full_refresh=args.full_refresh, run_date=args.date, config_file=args.config
    )
    for html in sorted(report.folder.glob("*.html")):
        print(f"  {html}")
    record = f"run {report.record.run_id}" if report.record else "run (not recorded)"
    print(f"{record}: {'success' if report.ok else 'failed'}" + (f" ({report.failure})" if report.failure else ""))
    return 0 if report.ok else EXIT_FAILED


def cmd_docs(args: argparse.Namespace) -> int:
    from convo.site import SiteBuildFailed, build_site

    try:
        site = build_site(_environment(args))
    except SiteBuildFailed as exc:
        print(f"convo: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"site: {site / 'index.html'}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convo", description=__doc__)
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
    b.set_defaults(func=cmd_build)

    c = sub.add_parser("check", help="run every data-quality check on the published version")
    _env_options(c)
    c.set_defaults(func=cmd_check)

    r = sub.add_parser("rollback", help="publish the previous (or a named) version again")
    _env_options(r)
    r.add_argument("--to", type=int, metavar="RUN_ID", help="version to publish (default: the one before the current)")
    r.set_defaults(func=cmd_rollback)

    h = sub.add_parser("runs", help="list the environment's run history")
    _env_options(h)
    h.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    h.set_defaults(func=cmd_runs)

    n = sub.add_parser(
        "run",
        help="run the pipeline's notebooks in order (build, then reports) with papermill",
        description="Execute notebooks/NN_*.py in order: the first builds from EVENTS_FILEs (default:"
        " the environment's inputs), the others report on what it published. Executed notebooks and"
        " their HTML go to reports/<env>/<run_id>/; reports/<env>/latest points at the last success.",
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
    n.set_defaults(func=cmd_run)

    d = sub.add_parser(
        "docs",
        help="build the documentation site into reports/site/",
        description="Generate the site's pages from the model metadata and the environment's"
        " warehouse, add the hand-written pages of site/, and build them with Sphinx into"
        " reports/site/. Any broken link or reference fails the build.",
    )
    _env_options(d)
    d.set_defaults(func=cmd_docs)

    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # Messages for a person: what failed and why, no traceback (use -v for it).
    from convo.build.ingest import InputError
    from convo.engine.warehouse import WarehouseLocked
    from convo.lock import EnvironmentBusy

    umask = os.umask(0o077)  # the caller's, given back at the end: a command sets its environment's
    os.umask(umask)
    try:
        return args.func(args)
    except (EnvironmentBusy, WarehouseLocked) as exc:
        print(f"convo: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except (InputError, config.ConfigError, ValueError) as exc:
        if args.verbose:
            raise
        print(f"convo: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # anything else failed the command: one line for a person, -v for the traceback
        if args.verbose:
            raise
        if disk_full(exc):
            print(
                f"convo: the disk is full: {_first_line(exc)}; the published version is as it was,"
                " free some space and run the command again",
                file=sys.stderr,
            )
        else:
            print(f"convo: {type(exc).__name__}: {_first_line(exc)} (run with -v for the traceback)", file=sys.stderr)
        return EXIT_FAILED
    finally:
        os.umask(umask)


def disk_full(exc: BaseException) -> bool:
    """Whether `exc`, or an error it was raised from or while handling, is "no space left on device"
    (DuckDB reports it in its own exception types, with the system's message)."""
    no_space = os.strerror(errno.ENOSPC)
    seen: BaseException | None = exc
    while seen is not None:
        if (isinstance(seen, OSError) and seen.errno == errno.ENOSPC) or no_space in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else "(no message)"


def entry() -> None:
    """The `convo` command: `main`, then leave without tearing the interpreter down.

    Tearing down the modules Great Expectations imports takes about a second after every build
    or check; by the time `main` returns, the warehouse is closed and nothing is left to clean up.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
