"""Seed files: small reference data kept in the repository (dbt's `seeds`)."""

from __future__ import annotations

import csv
from pathlib import Path

from convo.build.ingest import InputError

TAG_CONTACT_REASONS = "tag_contact_reasons.csv"
_TAG_COLUMNS = ["tag", "contact_reason", "category"]


def load_tag_contact_reasons(seeds_dir: Path) -> str:
    """The tag -> contact reason -> category mapping, validated, as a SQL query over the file."""
    path = seeds_dir / TAG_CONTACT_REASONS
    _validated_rows(path)
    quoted = str(path).replace("'", "''")
    return (
        "SELECT lower(trim(tag)) AS tag, trim(contact_reason) AS contact_reason, trim(category) AS category"
        f" FROM read_csv('{quoted}', header = true, all_varchar = true)"
    )


def read_tag_contact_reasons(seeds_dir: Path) -> dict[str, list[str]]:
    """The same mapping as columns of values, for engines that cannot read the file with DuckDB SQL."""
    # Trimmed as DuckDB's trim() does (spaces only), tags lower-cased: the same rows as the SQL above.
    rows = [
        (t.strip(" ").lower(), r.strip(" "), c.strip(" "))
        for t, r, c in _validated_rows(seeds_dir / TAG_CONTACT_REASONS)
    ]
    return {name: [row[i] for row in rows] for i, name in enumerate(_TAG_COLUMNS)}


def _validated_rows(path: Path) -> list[list[str]]:
    """The data rows of the mapping file; InputError naming the line when it is not valid."""
    if not path.is_file():
        raise InputError(f"{path}: seed file not found")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or [h.strip().lower() for h in rows[0]] != _TAG_COLUMNS:
        raise InputError(f"{path}: line 1: expected the header {','.join(_TAG_COLUMNS)}")
    first_line: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 3 or not all(v.strip() for v in row):
            raise InputError(f"{path}: line {line}: expected 3 non-empty fields, found {row!r}")
        tag = row[0].strip().lower()
        if tag in first_line:
            raise InputError(f"{path}: line {line}: tag {tag!r} is already mapped on line {first_line[tag]}")
        first_line[tag] = line
    return rows[1:]
