"""A run's record written part-way and again at its end (`convo run` saves its build's part before
its notebooks read it): the second write replaces the first, never adds to it."""

from convo.engine.state import CheckRecord, FileRecord, Run, RunLog, TableRecord
from convo.engine.warehouse import Warehouse

META = "convo_meta"  # the schema engine/state.py owns; read here to see exactly what it wrote


def _rows(wh: Warehouse, table: str) -> list[tuple]:
    return wh.execute(f"SELECT * FROM {META}.{table} ORDER BY ALL")


def test_saving_then_finishing_a_run_records_each_file_table_and_check_once(tmp_path):
    wh = Warehouse(tmp_path / "wh.duckdb")
    try:
        runs = RunLog(wh)
        run = runs.start("dev", "run --date 2024-04-20")
        run.files.append(FileRecord(1, "events.csv", "ab12", "csv", "ingested", 5, 3, 1, 1))
        run.tables.append(TableRecord("dim_user", 2, 2, 0, 0.1))
        run.checks.append(CheckRecord("dim_user", "user_id is unique", "error", True))
        run.status, run.published_version = "running", run.run_id
        runs.save(run)
        assert wh.execute(f"SELECT status, finished_at, published_version FROM {META}.runs") == [("running", None, 1)]
        saved = {t: _rows(wh, t) for t in ("run_files", "run_tables", "run_checks")}
        assert [len(r) for r in saved.values()] == [1, 1, 1]

        run.status, run.message = "success", "report: reports/dev/x"
        runs.finish(run)
        ((status, message, finished),) = wh.execute(f"SELECT status, message, finished_at FROM {META}.runs")
        assert (status, message) == ("success", "report: reports/dev/x") and finished is not None
        assert {t: _rows(wh, t) for t in saved} == saved  # the same rows, once each

        run.files.clear()  # a later write is the whole truth: what it no longer holds is gone
        runs.finish(run)
        assert _rows(wh, "run_files") == []
    finally:
        wh.close()


def test_a_run_with_a_report_folder_says_so_in_its_alert():
    assert "report" not in Run(1, "dev", "build").summary()
    assert Run(2, "dev", "run", report="reports/dev/x").summary()["report"] == "reports/dev/x"
