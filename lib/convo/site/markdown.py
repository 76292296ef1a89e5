"""Small MyST Markdown writers: escaped text, code spans, tables, fenced blocks."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence

from convo import escape

MAX_VALUE = 48  # characters of a sample value shown in a table cell

text = escape.markdown  # literal text: data values (paths, tags, messages) are always written with it


def code(value: str) -> str:
    """An inline code span, fenced with more backticks than the value contains.

    For names the project itself defines (columns, commands it suggests): a code span keeps a newline
    or a `|`, which would break a table row, so data goes through `text` instead.
    """
    value = str(value)
    fence = "`" * (max((len(m) for m in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def prose(value: str) -> str:
    """Markdown written by people (descriptions), made safe for one table cell."""
    return " ".join(value.split()).replace("|", r"\|")


def value(v) -> str:
    """A data value for a table cell."""
    if v is None:
        return "*NULL*"
    if isinstance(v, dt.datetime):
        return text(f"{v:%Y-%m-%d %H:%M:%S}")
    if isinstance(v, float):
        return text(f"{v:.6g}")
    shown = str(v)
    if len(shown) > MAX_VALUE:
        shown = shown[: MAX_VALUE - 1] + "…"
    return text(shown)


def timestamp(ts: dt.datetime | None) -> str:
    return f"{ts:%Y-%m-%d %H:%M:%S} UTC" if ts else "-"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A pipe table; cells are already Markdown."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def fenced(body: str, info: str = "") -> str:
    """A fenced block (code or directive) whose fence no line of `body` can close."""
    longest = max((len(m) for m in re.findall(r"^\s*(`{3,})", body, flags=re.M)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}{info}\n{body.rstrip()}\n{fence}\n"
