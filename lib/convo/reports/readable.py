"""Tables formatted for reading: how every DataFrame a report shows is rendered.

`reporting.setup_notebook` registers `html` and `text` as the notebook's display of a DataFrame,
so each table a report shows (and nbval compares) is formatted the same way, while the frames
themselves keep their numbers for charts and sentences:

- column names as words (`median_hours_to_resolve` -> `median hours to resolve`);
- integers with thousands separators (`12,345`), floats as rounded by the report, with separators;
  identifiers and keys (`id`, `..._id`, `..._key`) as their digits (`20240304`);
- columns listed in `df.attrs["percent"]` (shares from 0 to 1) as percentages (`12.5 %`);
- timestamps at midnight as dates (`2024-03-04`), others to the second;
- an empty value as the reason its column gives in `df.attrs["empty_because"]` ("no earlier week"),
  else as a dash: never `NaN`, `None` or `NaT`.

Values are text: pandas' HTML escapes every one of them.
"""

from __future__ import annotations

import pandas as pd

EMPTY_BECAUSE = "empty_because"
PERCENT = "percent"
NO_VALUE = "–"


def because(df: pd.DataFrame, **reasons: str) -> pd.DataFrame:
    """`df`, whose empty values in each named column are shown as the reason given."""
    df.attrs[EMPTY_BECAUSE] = {**df.attrs.get(EMPTY_BECAUSE, {}), **reasons}
    return df


def percent(df: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """`df`, whose named columns (shares from 0 to 1) are shown as percentages."""
    df.attrs[PERCENT] = [*df.attrs.get(PERCENT, []), *columns]
    return df


def _timestamps(column: pd.Series) -> pd.Series:
    present = column.dropna()
    whole_days = present.empty or bool((present == present.dt.normalize()).all())
    return column.dt.strftime("%Y-%m-%d" if whole_days else "%Y-%m-%d %H:%M:%S")


def _is_identifier(name) -> bool:
    return str(name) == "id" or str(name).endswith(("_id", "_key"))


def _value(value, share: bool, grouped: bool) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if grouped else str(value)
    if isinstance(value, float):
        return f"{value * 100:,.1f} %" if share else (f"{value:,.0f}" if value.is_integer() else f"{value:,}")
    return str(value)


def _column(column: pd.Series, share: bool, empty: str, grouped: bool) -> pd.Series:
    missing = column.isna()
    if pd.api.types.is_datetime64_any_dtype(column):
        shown = _timestamps(column)
    else:
        shown = column.astype(object).map(
            lambda v: v if v is None or v is pd.NA else _value(v.item() if hasattr(v, "item") else v, share, grouped)
        )
    return shown.astype(object).where(~missing, empty)


def frame(df: pd.DataFrame) -> pd.DataFrame:
    """`df` as the text a reader sees, column by column."""
    reasons, shares = df.attrs.get(EMPTY_BECAUSE, {}), set(df.attrs.get(PERCENT, []))
    shown = pd.DataFrame(
        {
            str(name).replace("_", " "): _column(
                df[name], name in shares, reasons.get(name, NO_VALUE), grouped=not _is_identifier(name)
            )
            for name in df.columns
        },
        index=df.index,
    )
    if shown.index.name:
        shown.index = shown.index.rename(str(shown.index.name).replace("_", " "))
    return shown


def _shows_index(df: pd.DataFrame) -> bool:
    return not isinstance(df.index, pd.RangeIndex) or df.index.name is not None


def html(df: pd.DataFrame) -> str:
    return frame(df).to_html(index=_shows_index(df), border=0, classes="convo-table", escape=True, na_rep=NO_VALUE)


def text(df: pd.DataFrame) -> str:
    return frame(df).to_string(index=_shows_index(df), na_rep=NO_VALUE)
