"""The ingestion contract both readers implement (`build/contract.py`), on its own: no build.

That DuckDB's and Spark's readers give the same rows under it is `tests/test_pyspark.py`.
"""

import gzip
import re
from pathlib import Path

import ibis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import HEADER, UNREADABLE_FILES, write_events
from convo.build import contract
from convo.build.contract import InputError, InputFile, counted
from convo.models.staging import RAW_COLUMNS

GOOD = ("2024-05-02 9:00:00", "30000000000001", "501", "", "customer_message_received", "<m>")
A_CSV = InputFile(Path("a.csv"), "csv", "ab12", RAW_COLUMNS)


def test_counts_add_up_and_refuse_rows_lost_or_invented():
    c = counted(3, A_CSV, read=10_000, staged=6_000, rejected=3_000)
    assert (c.file_id, c.path, c.sha256, c.file_format, c.action) == (3, "a.csv", "ab12", "csv", "ingested")
    assert (c.rows_read, c.rows_staged, c.rows_rejected, c.duplicates_removed) == (10_000, 6_000, 3_000, 1_000)
    assert c.summary() == "a.csv: 10,000 rows read = 6,000 staged + 3,000 rejected + 1,000 duplicates"
    with pytest.raises(RuntimeError, match="a.csv: 4 rows read, but 3 staged and 2 rejected"):
        counted(3, A_CSV, read=4, staged=3, rejected=2)


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_counts_of_any_file_add_up(staged, rejected, duplicates):
    read = staged + rejected + duplicates
    c = counted(1, A_CSV, read=read, staged=staged, rejected=rejected)
    assert c.rows_read == c.rows_staged + c.rows_rejected + c.duplicates_removed
    assert c.duplicates_removed == duplicates


def test_rejected_rows_have_one_shape_for_invalid_rows_and_malformed_lines():
    invalid = ibis.memtable(
        {
            "file_seq": [2, 1, 1],
            "source_file": ["b.csv", "a.csv", "a.csv"],
            "source_line": [7, 9, 3],
            **{c: [f"{c}-{i}" for i in range(3)] for c in HEADER},
            "reject_reason": ["event is empty", None, "user_id is empty"],
        }
    )
    malformed = ibis.memtable(
        {
            "file_seq": [1],
            "source_file": ["a.csv"],
            "source_line": [5],
            "raw_line": ["x,y"],
            "reason": ["MISSING COLUMNS: Expected Number of Columns: 6 Found: 2"],
        }
    )
    rejected = contract.rejected_rows(invalid, malformed)
    assert rejected.schema() == contract.REJECTED_SCHEMA
    rows = ibis.duckdb.connect().to_pyarrow(rejected).to_pylist()
    assert [(r["file_id"], r["source_line"], r["reason"], r["raw_line"]) for r in rows] == [
        (1, 3, "user_id is empty", None),
        (1, 5, "malformed CSV row: MISSING COLUMNS: Expected Number of Columns: 6 Found: 2", "x,y"),
        (2, 7, "event is empty", None),
    ]
    assert rows[0]["event"] == "event-2" and rows[1]["event"] is None  # a malformed line has no fields


def test_ingested_files_rows_are_the_files_records(tmp_path):
    paths = [write_events(tmp_path / "a.csv", [GOOD]), write_events(tmp_path / "b.csv", [GOOD, GOOD])]
    with contract.inspected(paths) as files:
        records = [
            counted(1, files[0], read=1, staged=1, rejected=0),
            counted(2, files[1], read=2, staged=0, rejected=0),
        ]
        table = contract.ingested_files(records)
    assert table.schema() == contract.INGESTED_FILES_SCHEMA
    rows = ibis.duckdb.connect().to_pyarrow(table).to_pylist()
    assert [(r["file_id"], r["path"], r["file_format"], r["duplicates_removed"]) for r in rows] == [
        (1, str(paths[0]), "csv", 0),
        (2, str(paths[1]), "csv", 2),
    ]
    assert rows[0]["sha256"] == contract.sha256(paths[0]) != rows[1]["sha256"]


def test_inspection_counts_lines_and_reads_gzipped_text(tmp_path):
    plain = write_events(tmp_path / "e.csv", [GOOD, GOOD])
    packed = tmp_path / "e.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()[:60]) + gzip.compress(plain.read_bytes()[60:]))
    with contract.inspected([plain, packed]) as (p, g):
        assert (p.file_format, p.gzipped, p.lines, p.columns) == ("csv", False, 3, tuple(HEADER))
        assert (g.file_format, g.gzipped, g.lines, g.columns) == ("csv", True, 3, tuple(HEADER))
        assert g.sha256 != p.sha256  # the file as stored
        assert Path(p.read_name).read_bytes() == plain.read_bytes()  # the descriptor readers read


@pytest.mark.parametrize(("name", "content", "message"), UNREADABLE_FILES)
def test_a_file_that_cannot_be_read_is_refused_with_its_name_and_reason(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=re.escape(message)), contract.inspected([tmp_path / name]):
        pass


def test_repeated_content_is_kept_once_at_its_first_file(tmp_path):
    a = write_events(tmp_path / "a.csv", [GOOD])
    b = write_events(tmp_path / "b.csv", [GOOD[:5] + ("other",)])
    a_again = write_events(tmp_path / "c.csv", [GOOD])
    with contract.inspected([a, b, a_again, a]) as files:
        first, repeated = contract.first_of_each_content(files)
    assert [f.path for f in first] == [a, b]
    assert [f.path for f in repeated] == [a_again, a]


def test_entries_not_read_say_why(tmp_path):
    (tmp_path / "sub").mkdir()
    assert contract.not_read(tmp_path / "sub") == "not read: a directory"
    assert contract.not_read(tmp_path / "notes.txt") == "not read: not a .csv, .csv.gz, .parquet file"
