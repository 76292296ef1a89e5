"""Run history: what every command that changes an environment did, kept in the warehouse."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from convo.engine.warehouse import META, Warehouse
from convo.provenance import CodeVersion

_DDL = f"""
CREATE TABLE IF NOT EXISTS {META}.runs (
    run_id BIGINT PRIMARY KEY, environment VARCHAR, command VARCHAR, started_at TIMESTAMP,
    finished_at TIMESTAMP, status VARCHAR, message VARCHAR, published_version BIGINT, full_refresh BOOLEAN);
CREATE TABLE IF NOT EXISTS {META}.run_files (
    run_id BIGINT, file_id BIGINT, path VARCHAR, sha256 VARCHAR, file_format VARCHAR, action VARCHAR,
    rows_read BIGINT, rows_staged BIGINT, rows_rejected BIGINT, duplicates_removed BIGINT);
CREATE TABLE IF NOT EXISTS {META}.run_tables (
    run_id BIGINT, table_name VARCHAR, rows BIGINT, inserted BIGINT, retired BIGINT, seconds DOUBLE);
CREATE TABLE IF NOT EXISTS {META}.run_checks (
    run_id BIGINT, table_name VARCHAR, check_name VARCHAR, severity VARCHAR, success BOOLEAN,
    unexpected_count BIGINT, sample VARCHAR, reason VARCHAR, result JSON);
ALTER TABLE {META}.runs ADD COLUMN IF NOT EXISTS code_commit VARCHAR;
ALTER TABLE {META}.runs ADD COLUMN IF NOT EXISTS code_clean BOOLEAN;
ALTER TABLE {META}.runs ADD COLUMN IF NOT EXISTS config JSON;
"""
# The three added columns: which code (git commit, clean tree or not) and which resolved
# configuration each run used. ADD COLUMN, so that warehouses built before them keep their history.


@dataclass
class FileRecord:
    file_id: int | None
    path: str
    sha256: str | None  # None for a directory entry that is not read
    file_format: str | None
    action: str
    rows_read: int = 0
    rows_staged: int = 0
    rows_rejected: int = 0
    duplicates_removed: int = 0


@dataclass
class TableRecord:
    table_name: str
    rows: int
    inserted: int
    retired: int
    seconds: float


@dataclass
class CheckRecord:
    table_name: str
    check_name: str
    severity: str
    success: bool
    unexpected_count: int | None = None
    sample: str | None = None
    reason: str | None = None
    result: dict = field(default_factory=dict)


@dataclass
class Run:
    run_id: int
    environment: str
    command: str
    full_refresh: bool = False
    status: str = "running"
    message: str | None = None
    published_version: int | None = None
    code: CodeVersion = CodeVersion(None, None)
    config: dict = field(default_factory=dict)
    files: list[FileRecord] = field(default_factory=list)
    tables: list[TableRecord] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)
    report: str | None = None  # the folder of a `convo run`'s reports

    def summary(self) -> dict:
        """What alerts and logs carry."""
        return {
            "run_id": self.run_id,
            "environment": self.environment,
            "command": self.command,
            "status": self.status,
            "message": self.message,
            "published_version": self.published_version,
            "code_commit": self.code.commit,
            "code_clean": self.code.clean,
            "config": self.config,
            "files": [asdict(f) for f in self.files],
            "tables": [asdict(t) for t in self.tables],
            "failed_checks": [asdict(c) | {"result": None} for c in self.checks if not c.success],
        } | ({"report": self.report} if self.report else {})


class RunLog:
    def __init__(self, warehouse: Warehouse):
        self.wh = warehouse
        self.wh.execute(_DDL)

    def start(
        self,
        environment: str,
        command: str,
        *,
        full_refresh: bool = False,
        code: CodeVersion | None = None,
        config: dict | None = None,
    ) -> Run:
        run_id = self.wh.scalar(f"SELECT coalesce(max(run_id), 0) + 1 FROM {META}.runs")
        config = config or {}
        code = code or CodeVersion(None, None)
        self.wh.execute(
            f"INSERT INTO {META}.runs (run_id, environment, command, started_at, status, full_refresh,"
            " code_commit, code_clean, config) VALUES (?, ?, ?, now()::TIMESTAMP, 'running', ?, ?, ?, ?)",
            [run_id, environment, command, full_refresh, code.commit, code.clean, json.dumps(config)],
        )
        return Run(run_id, environment, command, full_refresh, code=code, config=config)

    def mark_interrupted(self) -> list[dict]:
        """Runs still 'running' when a new command holds the lock died part-way: marked failed,
        and returned (run_id, command, started_at) for the alert that says so."""
        found = [
            dict(run_id=r, command=c, started_at=t)
            for r, c, t in self.wh.execute(
                f"SELECT run_id, command, started_at FROM {META}.runs WHERE status = 'running' ORDER BY run_id"
            )
        ]
        self.wh.execute(
            f"UPDATE {META}.runs SET status = 'failed', message = 'interrupted: the process stopped part-way',"
            " finished_at = now()::TIMESTAMP WHERE status = 'running'"
        )
        return found

    def save(self, run: Run) -> None:
        """Write the run's state and records so far, the run still going: `convo run` records its
        build before its notebooks read it. A later `save` or `finish` replaces what this wrote."""
        with self.wh.transaction():
            self._write(run)

    def finish(self, run: Run) -> None:
        """Write the run's outcome and records in one transaction (one commit, not one per row)."""
        with self.wh.transaction():
            self._write(run)
            self.wh.execute(f"UPDATE {META}.runs SET finished_at = now()::TIMESTAMP WHERE run_id = ?", [run.run_id])

    def _write(self, run: Run) -> None:
        self.wh.execute(
            f"UPDATE {META}.runs SET status = ?, message = ?, published_version = ? WHERE run_id = ?",
            [run.status, run.message, run.published_version, run.run_id],
        )
        for table, records in (("run_files", run.files), ("run_tables", run.tables), ("run_checks", run.checks)):
            self.wh.execute(f"DELETE FROM {META}.{table} WHERE run_id = ?", [run.run_id])
            if not records:
                continue
            columns = list(asdict(records[0]))
            rows = [
                [
                    run.run_id,
                    *(json.dumps(v, default=str) if c == "result" else v for c, v in asdict(record).items()),
                ]
                for record in records
            ]
            marks = ", ".join("?" * (len(columns) + 1))
            self.wh.execute_many(f"INSERT INTO {META}.{table} (run_id, {', '.join(columns)}) VALUES ({marks})", rows)
