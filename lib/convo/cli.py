"""`convo`: build, check, run and document the conversation warehouse."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys

from convo import config
from convo.arguments import parser

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_BUSY = 1, 2, 3


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
    from convo.build import runner
    from convo.reports import notebooks
    from convo.site import build_site

    env = _environment(args)
    try:
        report = notebooks.run(
            env,
            args.files,
            full_refresh=args.full_refresh,
            run_date=args.date,
            config_file=args.config,
            site=build_site,
        )
    except runner.BuildFailed as exc:  # nothing published, no report run: the failing checks say why
        _print_run(exc.run)
        return EXIT_FAILED
    for html in sorted(report.folder.glob("*.html")):
        print(f"  {html}")
    print(
        f"run {report.record.run_id}: {'success' if report.ok else 'failed'}"
        + (f" ({report.failure})" if report.failure else "")
    )
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


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    commands = {
        "build": cmd_build,
        "check": cmd_check,
        "rollback": cmd_rollback,
        "runs": cmd_runs,
        "run": cmd_run,
        "docs": cmd_docs,
    }
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
        return commands[args.command](args)
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
