import csv
import importlib
import os
import sys
from pathlib import Path

import duckdb
import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

from convo.audit import worker as audit_worker  # noqa: E402
from convo.config import Environment  # noqa: E402
from convo.models.registry import table_docs  # noqa: E402

# Each example of the warehouse property tests runs real builds (about a second each), so CI
# runs a few; `HYPOTHESIS_PROFILE=thorough` runs many more by hand.
settings.register_profile("ci", max_examples=8, deadline=None)
settings.register_profile("thorough", max_examples=200, deadline=None)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)


def whole_build_examples(in_ci: int) -> int:
    """Random examples of a property whose every example runs several whole builds, audit included
    (a few seconds each): `in_ci` in CI, the profile's count otherwise."""
    return in_ci if PROFILE == "ci" else settings.default.max_examples


HEADER = ["event_timestamp", "conversation_id", "user_id", "agent_id", "event", "event_value"]

# Files the ingestion contract refuses before anything is written: (name, content or None for no
# file, what the message says after the file's name).
UNREADABLE_FILES = [
    ("missing.csv", None, "missing.csv: file not found"),
    ("events.json", b"[]", "events.json: unsupported file type '.json'; expected .csv, .csv.gz, .parquet"),
    ("empty.csv", b"", "empty.csv: the file is empty; expected a header line"),
    ("header.csv", b"a,b\n", "header.csv: line 1: wrong header 'a,b'"),
    ("broken.csv.gz", b"\x1f\x8b not gzip", "broken.csv.gz: not a readable gzip file"),
    ("broken.parquet", b"PAR1 not really", "broken.parquet: not a readable Parquet file"),
]


def write_events(path: Path, rows, header=HEADER) -> Path:
    """Write raw event rows (tuples of text) as a CSV in the input format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def make_env(tmp_path: Path, name: str = "test", **overrides) -> Environment:
    settings = dict(
        name=name,
        root=ROOT,
        warehouse=tmp_path / "warehouse" / f"{name}.duckdb",
        inputs=(),
        seeds_dir=ROOT / "seeds",
        reports_dir=tmp_path / "reports",
        retain_versions=5,
        threads=1,  # one DuckDB thread per build: the suite already runs a worker per core
        memory_limit="2GB",
    )
    settings.update(overrides)
    return Environment(**settings)


def query(env: Environment, sql: str, params=None) -> list[dict]:
    """Rows of a query against the published warehouse, as dicts."""
    con = duckdb.connect(str(env.warehouse), read_only=True)
    try:
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
    finally:
        con.close()


def by_key(rows: list[dict], key: str) -> dict:
    return {r[key]: r for r in rows}


def mart_measures() -> list[str]:
    """The contact-reason mart's measures, in the order its YAML documents them: every column but its
    key (day, tag), the labels it copies from dim_tag and its load time."""
    docs = table_docs()
    mart, labels = docs["mart_contact_reasons_daily"], set(docs["dim_tag"].column_names)
    return [c.name for c in mart.columns if not (c.load_time or c.name in mart.primary_key or c.name in labels)]


@pytest.fixture(scope="session", autouse=True)
def great_expectations_imported():
    """Builds in a test's process audit in place, as in any process that has imported Great
    Expectations already (a notebook kernel, a server: `audit.worker.worth_starting`), instead of
    starting an audit process that imports it again for every build, seconds of CPU each. Every
    command a test starts as a process of its own audits in that process; test_audit_worker and
    test_quality test it directly."""
    importlib.import_module(audit_worker.VALIDATE)


@pytest.fixture
def env(tmp_path):
    return make_env(tmp_path)


# The longest modules, longest first, with their time on 2 busy cores (seconds, 2026-12-05). A
# worker takes the next module when it is nearly done with its own (`--dist loadfile`), so the
# long ones go first and the short ones fill in at the end, while the other worker finishes.
LONGEST_FIRST = {
    "test_incremental.py": 76,
    "test_pyspark.py": 71,
    "test_notebooks.py": 70,
    "test_readers.py": 67,
    "test_quality.py": 58,
    "test_bad_input.py": 50,
    "test_publishing.py": 44,
    "test_site.py": 37,
    "test_published_text.py": 28,
    "test_ingestion.py": 23,
    "test_alerts.py": 20,
    "test_cli_errors.py": 12,
    "test_site_incremental.py": 12,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules of LONGEST_FIRST start first, in its order; the others follow in file order
    (the order inside a module is kept)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
