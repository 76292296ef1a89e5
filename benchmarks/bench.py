"""Build benchmark: `convo build` against a plain hand-written DuckDB SQL pass, at several sizes.

Run by hand (never in CI), on a quiet machine:

    .venv/bin/python benchmarks/bench.py --sizes 100000 1000000 [--incremental] [--check]

For each size it generates events (seeded, cached in --workdir), then times, each in its own
process so that peak memory is the process's own:
- `convo build` of the whole file into a fresh warehouse (every table, audits, publish), with where
  its time went, step by step, from its run log;
- the reference: benchmarks/reference.sql, the lifecycle table only, in plain DuckDB SQL;
- the contact-reason report notebook, executed by papermill on the built warehouse;
- with --check, `convo check` on the built warehouse;
- with --incremental, a 90-day history loaded as 90 daily files, then one more day's file
  (about 1% of the events, ~1% late), against a full rebuild of all 91 files.
It compares the lifecycle table of both builds and rewrites its section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from convo import config

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CONVO = [PYTHON, "-m", "convo.cli"]
GENERATE = [PYTHON, str(ROOT / "tools" / "generate.py")]
SECTION_START, SECTION_END = "<!-- bench:build:start -->", "<!-- bench:build:end -->"


@dataclass
class Timing:
    seconds: float
    peak_mb: float


def run(cmd: list[str], label: str) -> Timing:
    """Run a command; its wall time and the peak RSS of its process tree's largest process."""
    print(f"  {label}: {' '.join(str(c) for c in cmd)}", flush=True)
    os.sync()  # the previous command's dirty pages are written now, not during this one's fsyncs
    start = time.perf_counter()
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{label} failed:\n{process.stderr.read()}")
    timing = Timing(seconds, usage.ru_maxrss / 1024)
    print(f"    {timing.seconds:.1f} s, peak {timing.peak_mb:.0f} MB", flush=True)
    return timing


def generate(conversations: int, out: Path, **options) -> Path:
    marker = out.with_name(out.name + ".done")
    if not marker.exists():
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        args = [f"--{k.replace('_', '-')}={v}" for k, v in options.items() if v is not True]
        args += [f"--{k.replace('_', '-')}" for k, v in options.items() if v is True]
        run([*GENERATE, "--conversations", str(conversations), "--out", str(out), *args], "generate")
        marker.touch()
    return out


def fresh(path: Path) -> Path:
    for p in path.parent.glob(path.name + "*"):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    for p in (path.parent / "logs").glob("*"):
        shutil.rmtree(p)
    return path


def reference(events: Path, db: Path) -> Timing:
    """The plain SQL pass, with the dev environment's DuckDB threads and memory limit."""
    env = config.load("dev")
    sql = (ROOT / "benchmarks" / "reference.sql").read_text().replace("$EVENTS", str(events))
    script = (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1]);"
        f"con.execute(\"SET threads = {env.threads}; SET memory_limit = '{env.memory_limit}';"
        ' SET enable_progress_bar = false");'
        "con.execute(sys.stdin.read())"
    )
    print(f"  reference: plain SQL pass over {events.name}", flush=True)
    os.sync()
    start = time.perf_counter()
    process = subprocess.Popen([PYTHON, "-c", script, str(db)], stdin=subprocess.PIPE, text=True)
    process.stdin.write(sql)
    process.stdin.close()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("the reference SQL failed")
    timing = Timing(time.perf_counter() - start, usage.ru_maxrss / 1024)
    print(f"    {timing.seconds:.1f} s, peak {timing.peak_mb:.0f} MB", flush=True)
    return timing


def lifecycle_differences(warehouse: Path, reference_db: Path) -> tuple[int, int]:
    """(rows, rows that differ in any column) between convo's lifecycle and the reference."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"ATTACH '{warehouse}' AS w (READ_ONLY); ATTACH '{reference_db}' AS r (READ_ONLY)")
    cols = [c for (c,) in con.execute("SELECT column_name FROM (DESCRIBE r.reference_lifecycle)").fetchall()]
    differs = " OR ".join(f"c.{c} IS DISTINCT FROM r.{c}" for c in cols)
    rows = con.execute("SELECT count(*) FROM w.main.fact_conversation_lifecycle").fetchone()[0]
    diff = con.execute(
        f"SELECT count(*) FROM w.main.fact_conversation_lifecycle c FULL JOIN r.reference_lifecycle r ON c.id = r.id"
        f" WHERE {differs}"
    ).fetchone()[0]
    return rows, diff


def table_seconds(warehouse: Path) -> dict[str, float]:
    """Seconds per table of the last successful build, as its run recorded them."""
    from convo.engine import state

    with state.read_only(warehouse) as recorded:
        build = next(r for r in recorded.runs(limit=100) if r.status == "success" and r.command.startswith("build"))
        return {t.table_name: t.seconds for t in recorded.table_rows(build.run_id)}


# Where a build's time goes, from its run log: each step ends when a line has matched each of its
# patterns (the log's own timestamps; a step whose line is missing is left out, not guessed).
PROFILE_STEPS = (
    ("start-up", r"convo\.build\.ingest: reading "),
    ("reading, hashing and landing the files", r"accepting events from"),
    # Since event ids are UUIDs they are hashed while parsing; before, in the de-duplication step.
    ("parsing with every reject rule", r"parsed (and identified )?\d+ rows"),
    ("event ids and de-duplication", r"de-duplicated the events"),
    ("staged events", r": stg_conversation_events: \d+ rows"),
    ("the other tables", r"auditing version"),
    # The copy is written while the audit process validates: the step ends when both are done.
    (
        "the audit and the readers' copy, side by side",
        r"validated \d+ expectations",
        r"readers' copy of version \d+ written",
    ),
    ("publishing", r"run \d+ success in"),
)
_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ (.*)$")


def build_profile(log: Path) -> list[tuple[str, float]]:
    """Seconds of each step of the build whose run log is `log` (PROFILE_STEPS)."""
    import datetime

    lines = []
    for line in log.read_text().splitlines():
        if m := _LOG_LINE.match(line):
            lines.append((datetime.datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f"), m[2]))
    if not lines:
        return []
    steps, previous = [], lines[0][0]
    for name, *patterns in PROFILE_STEPS:
        ends = [next((at for at, text in lines if re.search(pattern, text)), None) for pattern in patterns]
        end = None if None in ends else max(ends)
        if end is not None and end >= previous:
            steps.append((name, (end - previous).total_seconds()))
            previous = end
    return steps


def profile_line(warehouse: Path) -> str:
    logs = sorted((warehouse.parent / "logs").glob("*/run-*.log"))
    steps = build_profile(logs[-1]) if logs else []
    return "; ".join(f"{name} {seconds:.1f} s" for name, seconds in steps) or "no run log"


def report_notebook(warehouse: Path, out: Path) -> Timing:
    """notebooks/50_contact_reasons.py executed by papermill on the built warehouse, and its HTML."""
    script = (
        "import sys, time; from pathlib import Path; from convo.reports import notebooks as nb;"
        "out = Path(sys.argv[2]); nb.execute_notebook(Path('notebooks/50_contact_reasons.py'), out,"
        " {'warehouse': sys.argv[1]}, cwd=Path.cwd(), label='50_contact_reasons', run_started=time.perf_counter());"
        "nb.render_html(out)"
    )
    return run([PYTHON, "-c", script, str(warehouse), str(out)], "report notebook 50_contact_reasons")


def bench_size(n: int, work: Path, check: bool, incremental: bool) -> list[str]:
    print(f"{n:,} conversations", flush=True)
    events = generate(n, work / f"events-{n}.csv")
    size_mb = events.stat().st_size / 1e6
    warehouse = fresh(work / f"build-{n}" / "wh.duckdb")
    build = run([*CONVO, "build", "--warehouse", str(warehouse), str(events)], "convo build")
    ref_db = fresh(work / f"reference-{n}.duckdb")
    ref = reference(events, ref_db)
    rows, differ = lifecycle_differences(warehouse, ref_db)
    mart = table_seconds(warehouse).get("mart_contact_reasons_daily", float("nan"))
    profile = profile_line(warehouse)
    print(f"    where the build's time went: {profile}", flush=True)
    lines = [
        f"| {n:,} | {size_mb:,.0f} MB | convo build (all tables, audits, publish) | {build.seconds:.1f} |"
        f" {build.peak_mb:,.0f} | {build.seconds / ref.seconds:.2f}x the reference; {profile} |",
        f"| {n:,} | | reference: plain SQL, lifecycle only | {ref.seconds:.1f} | {ref.peak_mb:,.0f} |"
        f" lifecycle rows {rows:,}; rows differing from convo: {differ:,} |",
        f"| {n:,} | | contact-reason mart (inside the build) | {mart:.1f} | | from the run's table timings |",
    ]
    notebook = report_notebook(warehouse, work / f"contact_reasons-{n}.ipynb")
    lines.append(
        f"| {n:,} | | report notebook 50_contact_reasons (papermill, then HTML) | {notebook.seconds:.1f} |"
        f" {notebook.peak_mb:,.0f} | default parameters: every day, by week |"
    )
    if check:
        checked = run([*CONVO, "check", "--warehouse", str(warehouse)], "convo check")
        lines.append(
            f"| {n:,} | | convo check (all suites, published version) | {checked.seconds:.1f} |"
            f" {checked.peak_mb:,.0f} | |"
        )
    if incremental:
        days = generate(n, work / f"daily-{n}", daily_files=True, days=91, late_fraction=0.01)
        files = sorted(days.glob("*.csv"))
        history, last_day = files[:-1], files[-1]
        wh = fresh(work / f"incremental-{n}" / "wh.duckdb")
        loaded = run([*CONVO, "build", "--warehouse", str(wh), *map(str, history)], "history: 90 daily files")
        one_day = run([*CONVO, "build", "--warehouse", str(wh), str(last_day)], "one more day, incremental")
        full_wh = fresh(work / f"full-{n}" / "wh.duckdb")
        full = run([*CONVO, "build", "--warehouse", str(full_wh), *map(str, files)], "full rebuild, 91 files")
        share = last_day.stat().st_size / sum(f.stat().st_size for f in files)
        lines += [
            f"| {n:,} | | history: 90 daily files in one build | {loaded.seconds:.1f} | {loaded.peak_mb:,.0f} | |",
            f"| {n:,} | | one more day ({share:.1%} of the bytes), incremental | {one_day.seconds:.1f} |"
            f" {one_day.peak_mb:,.0f} | {one_day.seconds / full.seconds:.1%} of the full rebuild |",
            f"| {n:,} | | full rebuild of the same 91 files | {full.seconds:.1f} | {full.peak_mb:,.0f} | |",
        ]
    return lines


def write_section(lines: list[str], command: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = "\n".join(
        [
            SECTION_START,
            "## Build, reference SQL and incremental loads",
            "",
            f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()};"
            f" run on {time.strftime('%Y-%m-%d')}. Command:",
            "",
            "```bash",
            command,
            "```",
            "",
            "| conversations | input | what | seconds | peak RSS (MB) | notes |",
            "|---:|---:|---|---:|---:|---|",
            *lines,
            SECTION_END,
        ]
    )
    pattern = re.compile(re.escape(SECTION_START) + ".*?" + re.escape(SECTION_END), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/convo-bench"))
    parser.add_argument("--check", action="store_true", help="also time `convo check`")
    parser.add_argument("--incremental", action="store_true", help="also time a one-day incremental load")
    parser.add_argument("--no-write", action="store_true", help="print, do not update BENCHMARKS.md")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    command = " ".join([".venv/bin/python benchmarks/bench.py", *sys.argv[1:]])
    lines: list[str] = []
    for n in args.sizes:  # the section is rewritten after each size, so a later failure keeps the others
        try:
            lines += bench_size(n, args.workdir, args.check, args.incremental)
        except SystemExit as failure:
            lines.append(f"| {n:,} | | failed | | | {str(failure).splitlines()[0]} |")
        print("\n".join(lines))
        if not args.no_write:
            write_section(lines, command)


if __name__ == "__main__":
    main()
