"""What the readers' copy (lib/convo/published_copy.py) costs per build. Run by hand, never in CI:

    .venv/bin/python benchmarks/readers_copy.py --conversations 100000 [--workdir /tmp/convo-readers]

It generates N conversations as 91 daily files (seeded, ~1% of events late; cached in --workdir),
then, in a fresh warehouse: builds the first 90 files in one build (the first copy: every row),
builds the 91st day (a copy of the current copy plus the rows that differ), and rolls back (the
same, backwards). For each it prints what the run log says: the seconds to write the copy, its
size, and the seconds of the whole command, so the copy's share of a build can be read off.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONVO = [sys.executable, "-m", "convo.cli"]
GENERATE = [sys.executable, str(ROOT / "tools" / "generate.py")]
COPY_LINE = re.compile(r"readers' copy of version (\d+) written \((\d+) MB\) in ([\d.]+) s")
RUN_LINE = re.compile(r"run (\d+) (\w+) in ([\d.]+) s")


def convo(*args: str) -> None:
    print("  convo " + " ".join(args)[:150], flush=True)
    subprocess.run([*CONVO, *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def days(conversations: int, work: Path) -> list[Path]:
    folder = work / f"daily-{conversations}"
    if not (work / f"daily-{conversations}.done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run(
            [
                *GENERATE,
                "--conversations",
                str(conversations),
                "--out",
                str(folder),
                "--daily-files",
                "--days",
                "91",
                "--late-fraction",
                "0.01",
            ],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (work / f"daily-{conversations}.done").touch()
    return sorted(folder.glob("*.csv"))


def logged(warehouse: Path, run_id: int) -> str:
    (copy,) = COPY_LINE.findall((warehouse.parent / "logs" / "dev" / f"run-{run_id:06d}.log").read_text())
    (command,) = RUN_LINE.findall((warehouse.parent / "logs" / "dev" / f"run-{run_id:06d}.log").read_text())
    return f"copy of version {copy[0]}: {copy[2]} s ({copy[1]} MB); the whole command {command[2]} s ({command[1]})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, required=True)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/convo-readers"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    files = days(args.conversations, args.workdir)
    warehouse = args.workdir / f"wh-{args.conversations}" / "dev.duckdb"
    shutil.rmtree(warehouse.parent, ignore_errors=True)
    steps = [
        ("90 daily files, one build", ["build", *map(str, files[:90])]),
        ("one more day", ["build", str(files[90])]),
        ("rollback", ["rollback"]),
    ]
    for run_id, (label, command) in enumerate(steps, start=1):
        convo(*command[:1], "--warehouse", str(warehouse), *command[1:])
        print(f"{label}: {logged(warehouse, run_id)}", flush=True)


if __name__ == "__main__":
    main()
