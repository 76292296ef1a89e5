"""Audits: the data-quality checks a build must pass before it is published.

Every table has a Great Expectations suite in `expectations/<table>.json` (authored in
`convo.audit.suites`). Each check has a severity: a failed `error` check blocks publishing, a
failed `warn` check is recorded and reported but publishes. The suites run in SQL inside DuckDB
on the views of one schema: the unpublished version (`convo_candidate`) during a build, the
published one (`main`) for `convo check`.

Freshness and volume checks need settings from `[*.checks]` in convo.toml and, for volume, an
earlier successful build to compare with; without them they are skipped, and reported as such.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from convo.audit import suites as authored
from convo.config import ConfigError, Environment
from convo.engine import state
from convo.engine.state import CheckRecord
from convo.engine.warehouse import CANDIDATE

log = logging.getLogger(__name__)
ERROR, WARN = authored.ERROR, authored.WARN
SAMPLE_SIZE = 5  # offending values shown per failed check
# The [checks] settings of convo.toml (explained there); all optional.
SETTINGS = ("freshness_max_age_hours", "volume_max_drop_pct", "volume_max_growth_pct")


def load_suites(directory: Path, tables: Iterable[str] | None = None) -> tuple[list[dict], list[CheckRecord]]:
    """The stored suites (all, or those of `tables`) that still match the rules and model docs.

    A missing or stale suite is not run: it becomes a failed error check, so that a build never
    publishes with checks that lag behind the tables' keys.
    """
    expected = authored.suites()
    loaded, stale = [], []
    for name in expected if tables is None else tables:
        path = directory / f"{name}.json"
        stored = json.loads(path.read_text()) if path.is_file() else None
        if stored == expected[name]:
            loaded.append(stored)
            continue
        problem = "is missing" if stored is None else "differs from what the rules and models/*.yml give"
        stale.append(
            CheckRecord(
                name,
                "expectation suite is up to date",
                ERROR,
                False,
                reason=f"{path} {problem}; regenerate it with `python -m convo.audit.suites`",
            )
        )
    return loaded, stale


def _parameter_names(expectation: dict) -> list[str]:
    return [v["$PARAMETER"] for v in expectation["kwargs"].values() if isinstance(v, dict) and "$PARAMETER" in v]


@dataclass
class Parameters:
    """Run-time values of the suites' `$PARAMETER`s; a missing one skips its expectations."""

    values: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)  # parameter -> why it has no value
    notes: dict = field(default_factory=dict)  # parameter -> what it was derived from


def _settings(env: Environment | None) -> dict:
    checks = dict(env.checks) if env else {}
    unknown = sorted(set(checks) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"unknown [checks] settings {unknown} for environment {env.name!r}; known: {list(SETTINGS)}")
    for key, value in checks.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"checks.{key} for environment {env.name!r} must be a number >= 0, not {value!r}")
    return checks


def _existing_tables(con: duckdb.DuckDBPyConnection, schema: str) -> set[str]:
    rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [schema]).fetchall()
    return {name for (name,) in rows}


def parameters(
    con: duckdb.DuckDBPyConnection, env: Environment | None, version: int | None, now: datetime.datetime
) -> Parameters:
    settings = _settings(env)
    p = Parameters()
    if "freshness_max_age_hours" in settings:
        hours = settings["freshness_max_age_hours"]
        p.values[authored.FRESHNESS_PARAMETER] = now - datetime.timedelta(hours=hours)
        p.notes[authored.FRESHNESS_PARAMETER] = f"max age {hours:g} h at {now:%Y-%m-%d %H:%M} UTC"
    else:
        p.skipped[authored.FRESHNESS_PARAMETER] = "checks.freshness_max_age_hours is not set for this environment"

    band = [settings.get("volume_max_drop_pct"), settings.get("volume_max_growth_pct")]
    previous = state.on_connection(con).previous_row_counts(version) if version is not None and None not in band else {}
    for table in authored.VOLUME_TABLES:
        low, high = authored.volume_parameters(table)
        if None in band:
            why = "checks.volume_max_drop_pct and volume_max_growth_pct are not both set for this environment"
        elif table not in previous or previous[table][0] == 0:
            why = "no earlier successful build with rows in this table to compare with"
        else:
            count, run_id = previous[table]
            p.values[low] = math.floor(count * (1 - band[0] / 100))
            p.values[high] = math.ceil(count * (1 + band[1] / 100))
            p.notes[low] = p.notes[high] = f"run {run_id} left {count:,} rows; allowed -{band[0]:g}% .. +{band[1]:g}%"
            continue
        p.skipped[low] = p.skipped[high] = why
    return p


# -- results -> check records ---------------------------------------------------------------------
def _text(value) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(map(str, value)) + ")"
    return str(value)


def _exception(result: dict) -> str | None:
    info = result.get("exception_info") or {}
    entries = [info] if "raised_exception" in info else list(info.values())
    messages = [e.get("exception_message") for e in entries if isinstance(e, dict) and e.get("raised_exception")]
    return "; ".join(str(m) for m in messages) or None


def _count_and_sample(result: dict, note: str | None) -> tuple[int | None, str | None]:
    kind = result["expectation_config"]["type"]
    details = result.get("result") or {}
    if kind == "unexpected_rows_expectation":
        rows = (details.get("details") or {}).get("unexpected_rows") or []
        return details.get("observed_value"), "; ".join(_text(r) for r in rows[:SAMPLE_SIZE]) or None
    if "unexpected_count" in details:
        values = []
        for v in details.get("partial_unexpected_list") or []:
            if _text(v) not in values:
                values.append(_text(v))
        return details["unexpected_count"], ", ".join(values[:SAMPLE_SIZE]) or None
    observed = details.get("observed_value")
    return None, f"observed {observed}" + (f" ({note})" if note else "")


def record(table: str, result: dict, note: str | None) -> CheckRecord:
    """One GX ExpectationValidationResult (as JSON) -> the check record stored with the run.

    `note` says where the run-time parameters of the check came from, for its sample."""
    config = result["expectation_config"]
    count, sample = _count_and_sample(result, note)
    error = _exception(result)
    return CheckRecord(
        table_name=table,
        check_name=config["description"],
        severity=config["meta"]["severity"],
        success=bool(result["success"]) and error is None,
        unexpected_count=count,
        sample=sample,
        reason=f"the check could not run: {error}" if error else config["meta"]["why"],
        result=result,
    )


def skipped(table: str, expectation: dict, why: str) -> CheckRecord:
    return CheckRecord(
        table_name=table,
        check_name=expectation["description"],
        severity=expectation["meta"]["severity"],
        success=True,
        reason=f"skipped: {why}",
        result={"skipped": True, "reason": why, "expectation_config": expectation},
    )


def run(
    warehouse: Path,
    schema: str,
    *,
    env: Environment | None = None,
    version: int | None = None,
    run_id: int | None = None,
    tables: Iterable[str] | None = None,
    rows_schema: str | None = None,
    data_docs: bool = False,
    validate: Callable[..., dict[str, list[dict]]] | None = None,
    reader: duckdb.DuckDBPyConnection | None = None,
) -> list[CheckRecord]:
    """Every check on the tables in `schema` (the candidate or the published views).

    `version` is the version those views show (volume compares it with the build before it);
    `env` gives the thresholds, the suites' folder, and the folder for Data Docs, which are
    rendered when `data_docs` is set (it takes seconds, so only `convo check` asks for them);
    `tables` limits the audit to some tables' suites; `rows_schema` holds the rows an
    incremental build changed (copies of its partitions), which the row-level checks then read (the
    keys of a partition lie in it, so checking the changed partitions covers what the build could break).
    A build's audit of every row skips the checks whose suites say the build proves them
    (`suites.PROVEN_BY_BUILD`), and reports them as skipped. `validate` runs GX on the suites
    (a build passes its audit process's); by default, `convo.audit.validate.validate` here.
    `reader` is a connection to the warehouse to read the run history through (a build that writes
    the readers' copy meanwhile holds the file open read-only); by default the file is opened here.
    """
    stored, records = load_suites(env.root / "expectations" if env else authored.EXPECTATIONS_DIR, tables)
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)  # events are naive UTC
    # A connection of its own is closed before GX opens the file (DuckDB refuses two configs in one process).
    con = reader or duckdb.connect(str(warehouse), read_only=True)
    try:
        p = parameters(con, env, version, now)
        existing = _existing_tables(con, schema)
    finally:
        if reader is None:
            con.close()
    every_row_of_a_build = schema == CANDIDATE and rows_schema is None
    runnable = []
    for data in stored:
        if data["name"] not in existing:
            records.append(
                CheckRecord(data["name"], "table exists", ERROR, False, reason=f"{schema}.{data['name']} is missing")
            )
            continue
        kept = []
        for e in data["expectations"]:
            missing = [p.skipped[n] for n in _parameter_names(e) if n in p.skipped]
            proof = e["meta"].get("proven_by_build") if every_row_of_a_build else None
            if missing:
                records.append(skipped(data["name"], e, missing[0]))
            elif proof:
                records.append(skipped(data["name"], e, f"the build established it ({proof}); `convo check` checks it"))
            else:
                kept.append(e)
        runnable.append({**data, "expectations": kept})

    if not runnable:
        return records

    if validate is None:
        from convo.audit.validate import validate  # imports Great Expectations: slow, so only here

    results = validate(
        warehouse=warehouse,
        schema=schema,
        suites=runnable,
        parameters=p.values,
        run_name=f"{env.name if env else 'audit'} run {run_id or '-'} on {schema}",
        rows_schema=rows_schema,
        docs_dir=env.reports_dir / env.name / "data_docs" if env and data_docs else None,
        threads=env.threads if env else 2,
        memory_limit=env.memory_limit if env else "4GB",
    )
    notes = {
        (data["name"], e["description"]): "; ".join(dict.fromkeys(p.notes[n] for n in _parameter_names(e))) or None
        for data in runnable
        for e in data["expectations"]
    }
    for table, table_results in results.items():
        for result in table_results:
            records.append(record(table, result, notes[table, result["expectation_config"]["description"]]))
    return records
