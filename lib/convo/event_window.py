"""The window of plausible event times: events outside it are rejected at ingestion.

A timestamp such as 0024-03-06 (a two-digit year) or 9999-12-31 parses, but no real support
conversation happened then, and the calendar (`dim_date`) cannot hold it: one such row would
fail the date keys' checks and block every build. The window's start is a fixed date, its end is
relative to the run's clock (a file from a source whose clock runs a little ahead still loads),
and both lie inside the calendar, so every staged day has its `dim_date` row.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

# The days dim_date holds.
CALENDAR_START, CALENDAR_END = datetime.date(2016, 1, 1), datetime.date(2099, 12, 31)


@dataclass(frozen=True)
class EventWindow:
    """`[event_window]` in convo.toml: `earliest` (a date), `hours_ahead` (of the run's clock)."""

    earliest: datetime.date = CALENDAR_START
    hours_ahead: float = 24.0

    def __post_init__(self):
        if not CALENDAR_START <= self.earliest <= CALENDAR_END:
            raise ValueError(
                f"event_window.earliest {self.earliest} is outside the calendar (dim_date holds"
                f" {CALENDAR_START} to {CALENDAR_END})"
            )
        if not self.hours_ahead >= 0:
            raise ValueError(f"event_window.hours_ahead {self.hours_ahead} must be a number of hours >= 0")

    def bounds(self, now: datetime.datetime) -> tuple[datetime.datetime, datetime.datetime]:
        """The first and last accepted event time (UTC, no zone) for a run at `now` (UTC)."""
        start = datetime.datetime.combine(self.earliest, datetime.time())
        calendar_end = datetime.datetime.combine(CALENDAR_END, datetime.time(23, 59, 59))
        ahead = now.replace(tzinfo=None, microsecond=0) + datetime.timedelta(hours=self.hours_ahead)
        return start, max(start, min(ahead, calendar_end))


def from_settings(settings: dict) -> EventWindow:
    """The window from a `[event_window]` table (missing keys take their defaults)."""
    unknown = set(settings) - {"earliest", "hours_ahead"}
    if unknown:
        raise ValueError(f"event_window: unknown keys {', '.join(sorted(unknown))}; expected earliest, hours_ahead")
    earliest = settings.get("earliest", CALENDAR_START)
    if isinstance(earliest, datetime.datetime) or not isinstance(earliest, datetime.date):
        raise ValueError(f"event_window.earliest {earliest!r} must be a date like 2016-01-01 (no quotes, no time)")
    hours_ahead = settings.get("hours_ahead", 24.0)
    if isinstance(hours_ahead, bool) or not isinstance(hours_ahead, int | float):
        raise ValueError(f"event_window.hours_ahead {hours_ahead!r} must be a number")
    return EventWindow(earliest, float(hours_ahead))
