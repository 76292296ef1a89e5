"""Seeded, fast generator of synthetic raw conversation events.

The output follows the raw event contract exactly (see ``seeds/README.md``)::

    event_timestamp,conversation_id,user_id,agent_id,event,event_value
    2024-01-03 7:04:12,20000000000017,1041187,1012,agent_assigned,1012

Model of a conversation
-----------------------
Every conversation belongs to one user and starts at a moment drawn uniformly
over ``days`` days from ``start_date``.  Its events then unfold in this order,
each separated by a log-normally distributed gap (seconds for system events,
minutes for agents, hours for customers, about a day before a reopen):

1. The customer writes (``customer_message_received``), the system sets the
   status to ``Open`` (agent_id empty; sometimes in the same second) and the
   customer often adds a second message.
2. 97 % of conversations get an agent (``agent_assigned``: agent_id and
   event_value are the assigned agent).  The first tag is set by that agent
   (or, for 10 %, and for unassigned conversations, by a bot: agent_id empty).
3. One to four *rounds*: the agent replies (sometimes twice), sets
   ``Waiting for customer``, the customer answers (sometimes twice) and the
   system sets the status back to ``Open``.  Before some round the
   conversation may be handed over to a second agent (``agent_assigned`` with
   agent_id = the previous agent, event_value = the new one); if that happens
   before the first round, the first agent never replied.  One or two extra
   tags may follow the first reply, drawn from the same weighted tag list, so
   a tag may repeat; about 2 % of tags are not in ``seeds/tag_contact_reasons.csv``.
4. The ending: ~87 % of assigned conversations are ``Closed`` by the agent,
   the others stay ``Waiting for customer`` (the customer never answered the
   last reply) or ``Open`` (the customer answered last); unassigned ones stay
   ``Open``.  In total about 15 % are not closed at the end.
5. About 10 % of all conversations are reopened by a customer message after
   ``Closed`` (usually followed by a system ``Open``), answered and closed
   again; a few get a tag after closing (never more than three tags in all).

About 5 % of status values use a different case or are padded with spaces.
Message values are anonymised placeholders such as ``<message 8f3a>``; a few
contain a comma (and are quoted in CSV).  On average a conversation has about
12.7 events; there is one user per ~5 conversations and one agent per 500
conversations (at least 5).

Generation is vectorised with numpy, one chunk of conversations at a time (the
rows of each chunk are shuffled), and the text is assembled with Arrow
compute kernels, so memory stays bounded whatever the size.  The same
arguments always produce the same bytes.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from convo.event_window import CALENDAR_START

__all__ = ["GenerateResult", "generate", "HEADER", "EVENTS", "MAPPED_TAGS", "UNMAPPED_TAGS"]

HEADER = ("event_timestamp", "conversation_id", "user_id", "agent_id", "event", "event_value")
EVENTS = (
    "customer_message_received",
    "status_changed_to",
    "agent_assigned",
    "message_sent_to_customer",
    "tag_assigned",
)
CUSTOMER_MESSAGE, STATUS, ASSIGNED, AGENT_MESSAGE, TAG = range(len(EVENTS))
STATUSES = ("Open", "Waiting for customer", "Closed")
OPEN, WAITING, CLOSED = range(len(STATUSES))

# Relative frequency of each tag; the mapped ones are those of seeds/tag_contact_reasons.csv.
MAPPED_TAGS = {
    "payments": 22.0,
    "app_question": 18.0,
    "login": 14.0,
    "refund_status": 7.0,
    "password_reset": 6.0,
    "submission_error": 6.0,
    "document_upload": 5.0,
    "identity_verification": 4.0,
    "app_crash": 4.0,
    "deadline": 3.5,
    "pricing": 3.0,
    "feature_request": 2.5,
    "account_deletion": 2.0,
    "tax_office_letter": 1.0,
}
UNMAPPED_TAGS = {"refund_delay": 1.0, "crypto_gains": 0.6, "promo_code": 0.4}  # ~2 % in total

CHUNK_CONVERSATIONS = 50_000
FIRST_CONVERSATION_ID = 20_000_000_000_001
FIRST_USER_ID = 1_000_001
FIRST_AGENT_ID = 1001
CONVERSATIONS_PER_USER = 5
CONVERSATIONS_PER_AGENT = 500
MIN_AGENTS = 5
MAX_ROUNDS = 4
ROUND_PROBABILITIES = (0.55, 0.30, 0.11, 0.04)
STATUS_VARIANT_SHARE = 0.05
MESSAGE_WITH_COMMA_SHARE = 0.01
_MESSAGE_CODES = 16**4
_SECONDS_PER_DAY = 86_400


@dataclasses.dataclass(frozen=True)
class GenerateResult:
    """What :func:`generate` wrote."""

    files: list[Path]
    events: int
    conversations: int


# --------------------------------------------------------------------------- vocabulary


def _status_variants(status: str) -> list[str]:
    """The canonical spelling first, then the messy ones seen in real exports."""
    return [status, status.lower(), status.upper(), f" {status.lower()} ", f"{status} "]


def _csv_field(value: str) -> str:
    if any(ch in value for ch in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


@dataclasses.dataclass(frozen=True)
class _Vocabulary:
    """Every possible event_value, addressed by integer codes.

    ``raw`` holds the values themselves, ``csv`` the same values rendered as the
    last CSV field of a line (quoted when needed, followed by a newline).
    """

    raw: pa.Array
    csv: pa.Array
    status_base: int
    n_status_variants: int
    tag_base: int
    tag_probabilities: np.ndarray
    message_base: int
    agent_base: int

    @classmethod
    @functools.lru_cache(maxsize=4)
    def build(cls, n_agents: int) -> _Vocabulary:
        values: list[str] = []
        status_base = len(values)
        variants = [_status_variants(s) for s in STATUSES]
        for v in variants:
            values.extend(v)
        tag_base = len(values)
        tags = {**MAPPED_TAGS, **UNMAPPED_TAGS}
        values.extend(tags)
        weights = np.array(list(tags.values()))
        message_base = len(values)
        codes = [f"{i:04x}" for i in range(_MESSAGE_CODES)]
        values.extend(f"<message {c}>" for c in codes)
        values.extend(f"<message {c}, attachment>" for c in codes)
        agent_base = len(values)
        values.extend(str(FIRST_AGENT_ID + i) for i in range(n_agents))
        return cls(
            raw=pa.array(values, pa.string()),
            csv=pa.array([_csv_field(v) + "\n" for v in values], pa.string()),
            status_base=status_base,
            n_status_variants=len(variants[0]),
            tag_base=tag_base,
            tag_probabilities=weights / weights.sum(),
            message_base=message_base,
            agent_base=agent_base,
        )

    def statuses(self, rng: np.random.Generator, status: int, n: int) -> np.ndarray:
        messy = rng.random(n) < STATUS_VARIANT_SHARE
        variant = np.where(messy, rng.integers(1, self.n_status_variants, n), 0)
        return self.status_base + status * self.n_status_variants + variant

    def tags(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.tag_base + rng.choice(len(self.tag_probabilities), n, p=self.tag_probabilities)

    def messages(self, rng: np.random.Generator, n: int) -> np.ndarray:
        code = rng.integers(0, _MESSAGE_CODES, n)
        with_comma = rng.random(n) < MESSAGE_WITH_COMMA_SHARE
        return self.message_base + code + with_comma * _MESSAGE_CODES

    def agents(self, agent_index: np.ndarray) -> np.ndarray:
        return self.agent_base + agent_index


# --------------------------------------------------------------------------- one chunk


class _Timeline:
    """The event slots of ``n`` conversations, in chronological order.

    Each slot is one potential event per conversation: a mask saying in which
    conversations it happens, the gap since the previous event, the acting
    agent (-1 = none) and the value code.
    """

    def __init__(self, rng: np.random.Generator, vocab: _Vocabulary, n: int):
        self.rng, self.vocab, self.n = rng, vocab, n
        self.event: list[int] = []
        self.present: list[np.ndarray] = []
        self.gap: list[np.ndarray] = []
        self.agent: list[np.ndarray] = []
        self.value: list[np.ndarray] = []

    def chance(self, p: float) -> np.ndarray:
        return self.rng.random(self.n) < p

    def gap_seconds(self, median: float, sigma: float, lo: int, hi: int) -> np.ndarray:
        g = median * np.exp(sigma * self.rng.standard_normal(self.n))
        return np.clip(g, lo, hi).astype(np.int64)

    def add(self, event: int, present, gap, agent, value) -> None:
        self.event.append(event)
        self.present.append(np.broadcast_to(present, (self.n,)))
        self.gap.append(gap)
        self.agent.append(np.broadcast_to(agent, (self.n,)))
        self.value.append(value)

    def customer_message(self, present, gap) -> None:
        self.add(CUSTOMER_MESSAGE, present, gap, -1, self.vocab.messages(self.rng, self.n))

    def agent_message(self, present, gap, agent) -> None:
        self.add(AGENT_MESSAGE, present, gap, agent, self.vocab.messages(self.rng, self.n))

    def status(self, status: int, present, gap, agent) -> None:
        self.add(STATUS, present, gap, agent, self.vocab.statuses(self.rng, status, self.n))

    def assignment(self, present, gap, by_agent, assignee) -> None:
        self.add(ASSIGNED, present, gap, by_agent, self.vocab.agents(assignee))

    def tag(self, present, gap, agent) -> None:
        self.add(TAG, present, gap, agent, self.vocab.tags(self.rng, self.n))

    # typical waiting times, in seconds
    def system_gap(self):
        return self.rng.integers(0, 4, self.n)  # often the same second

    def agent_gap(self, median=900):
        return self.gap_seconds(median, 1.0, 20, 8 * 3600)

    def customer_gap(self, median=5400):
        return self.gap_seconds(median, 1.3, 30, 2 * _SECONDS_PER_DAY)

    def reopen_gap(self):
        return self.gap_seconds(_SECONDS_PER_DAY, 0.8, 3600, 5 * _SECONDS_PER_DAY)


def _simulate(rng: np.random.Generator, vocab: _Vocabulary, n: int, n_agents: int) -> _Timeline:
    """Lay out the events of ``n`` conversations following the model in the module docstring."""
    t = _Timeline(rng, vocab, n)
    first_agent = rng.integers(0, n_agents, n)
    second_agent = (first_agent + rng.integers(1, max(n_agents, 2), n)) % n_agents
    assigned = t.chance(0.97)
    rounds = np.where(assigned, rng.choice(np.arange(1, MAX_ROUNDS + 1), n, p=ROUND_PROBABILITIES), 0)
    handover = assigned & t.chance(0.12)
    handover_before = np.floor(rng.random(n) * rounds).astype(np.int64)  # 0 = first agent never replied
    ending = np.where(assigned, rng.choice([CLOSED, WAITING, OPEN], n, p=[0.87, 0.08, 0.05]), OPEN)
    closed = ending == CLOSED
    reopened = closed & t.chance(0.115)
    n_tags = rng.choice([1, 2, 3], n, p=[0.5, 0.35, 0.15])

    # 1. the customer opens the conversation
    t.customer_message(True, np.zeros(n, np.int64))
    t.status(OPEN, t.chance(0.99), t.system_gap(), -1)
    t.customer_message(t.chance(0.4), t.gap_seconds(60, 0.8, 5, 900))

    # 2. assignment and first tag
    t.assignment(assigned, t.agent_gap(600), first_agent, first_agent)
    bot_tag = ~assigned | t.chance(0.10)
    t.tag(True, t.gap_seconds(120, 1.0, 1, 3600), np.where(bot_tag, -1, first_agent))

    # 3. rounds of agent reply / customer answer
    for j in range(MAX_ROUNDS):
        in_round = j < rounds
        handed_over = handover & (handover_before <= j)
        agent = np.where(handed_over, second_agent, first_agent)
        t.assignment(handover & (handover_before == j), t.agent_gap(1800), first_agent, second_agent)
        t.agent_message(in_round, t.agent_gap(1200 if j == 0 else 600), agent)
        if j == 0:
            for extra in (2, 3):
                t.tag(in_round & (n_tags >= extra), t.gap_seconds(60, 1.0, 1, 1800), agent)
        t.agent_message(in_round & t.chance(0.3), t.gap_seconds(90, 1.0, 5, 1800), agent)
        t.status(WAITING, in_round & t.chance(0.9), t.gap_seconds(20, 1.0, 1, 600), agent)
        answered = in_round & ~((j == rounds - 1) & (ending == WAITING))
        t.customer_message(answered, t.customer_gap())
        t.customer_message(answered & t.chance(0.3), t.gap_seconds(60, 1.0, 5, 1800))
        t.status(OPEN, answered & t.chance(0.6), t.system_gap(), -1)

    # 4. the ending, 5. reopen and late tag
    agent = np.where(handover, second_agent, first_agent)
    t.status(CLOSED, closed, t.agent_gap(1800), agent)
    t.customer_message(reopened, t.reopen_gap())
    t.status(OPEN, reopened & t.chance(0.7), t.system_gap(), -1)
    t.agent_message(reopened, t.agent_gap(), agent)
    t.status(CLOSED, reopened, t.agent_gap(600), agent)
    t.tag(closed & (n_tags < 3) & t.chance(0.05), t.agent_gap(3600), agent)  # still 1-3 tags in all
    return t


@dataclasses.dataclass
class _Rows:
    """Flattened, shuffled events of one chunk as parallel numpy arrays."""

    seconds: np.ndarray  # since start_date 00:00:00
    conversation: np.ndarray
    user: np.ndarray
    agent: np.ndarray  # agent index (id - FIRST_AGENT_ID), -1 = none
    event: np.ndarray
    value: np.ndarray

    def take(self, order: np.ndarray) -> _Rows:
        return _Rows(*(getattr(self, f.name)[order] for f in dataclasses.fields(self)))


def _chunk_rows(
    seed: int, chunk: int, first: int, n: int, vocab: _Vocabulary, n_users: int, n_agents: int, days: int
) -> _Rows:
    rng = np.random.default_rng([seed, chunk])
    start = rng.integers(0, days * _SECONDS_PER_DAY, n)
    users = FIRST_USER_ID + rng.integers(0, n_users, n)
    t = _simulate(rng, vocab, n, n_agents)

    present = np.stack(t.present, axis=1)
    seconds = start[:, None] + np.cumsum(np.stack(t.gap, axis=1) * present, axis=1)
    conv_idx, slot_idx = np.nonzero(present)
    rows = _Rows(
        seconds=seconds[conv_idx, slot_idx],
        conversation=FIRST_CONVERSATION_ID + first + conv_idx,
        user=users[conv_idx],
        agent=np.stack(t.agent, axis=1)[conv_idx, slot_idx],  # agent index, -1 = none
        event=np.asarray(t.event, np.int8)[slot_idx],
        value=np.stack(t.value, axis=1)[conv_idx, slot_idx],
    )
    return rows.take(rng.permutation(len(conv_idx)))


# --------------------------------------------------------------------------- rendering


class _Renderer:
    """Turns :class:`_Rows` into Arrow string columns and CSV text."""

    def __init__(self, vocab: _Vocabulary, start: dt.date):
        self.vocab = vocab
        self.start = start
        self.events = pa.array(EVENTS, pa.string())
        self.time_of_day = pa.array(
            [f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(_SECONDS_PER_DAY)], pa.string()
        )
        self.dates = pa.array([], pa.string())

    def _date_strings(self, n_days: int) -> pa.Array:
        if len(self.dates) < n_days:
            self.dates = pa.array(
                [(self.start + dt.timedelta(days=d)).isoformat() for d in range(n_days + 30)], pa.string()
            )
        return self.dates

    def columns(self, rows: _Rows, csv: bool) -> list[pa.Array]:
        day = rows.seconds // _SECONDS_PER_DAY
        dates = self._date_strings(int(day.max()) + 1 if len(day) else 0)
        timestamp = pc.binary_join_element_wise(
            dates.take(day), self.time_of_day.take(rows.seconds % _SECONDS_PER_DAY), " "
        )
        agent = pa.array(FIRST_AGENT_ID + rows.agent, pa.int64(), mask=rows.agent < 0)
        values = self.vocab.csv if csv else self.vocab.raw
        return [
            timestamp,
            pc.cast(pa.array(rows.conversation), pa.string()),
            pc.cast(pa.array(rows.user), pa.string()),
            pc.cast(agent, pa.string()),
            self.events.take(rows.event),
            values.take(rows.value),
        ]

    def table(self, rows: _Rows) -> pa.Table:
        return pa.table(self.columns(rows, csv=False), names=list(HEADER))

    def csv_lines(self, rows: _Rows) -> pa.Array:
        """One string per row, each ending with a newline; agent_id NULL -> empty."""
        return pc.binary_join_element_wise(
            *self.columns(rows, csv=True), ",", null_handling="replace", null_replacement=""
        )


def _text_buffer(lines: pa.Array, lo: int, hi: int) -> pa.Buffer:
    """The bytes of lines[lo:hi], which are contiguous in the Arrow data buffer."""
    _, offsets_buf, data = lines.buffers()
    offsets = np.frombuffer(offsets_buf, np.int32)[lines.offset :]
    return data.slice(int(offsets[lo]), int(offsets[hi] - offsets[lo]))


# --------------------------------------------------------------------------- sinks


class _Sink:
    """Writes rendered rows to one file, or to one file per day."""

    def __init__(self, out: Path, fmt: str, renderer: _Renderer, daily: bool, days: int, start: dt.date):
        self.fmt, self.renderer, self.daily = fmt, renderer, daily
        if daily:
            out.mkdir(parents=True, exist_ok=True)
            self.paths = [out / f"events_{(start + dt.timedelta(days=d)).isoformat()}.{fmt}" for d in range(days)]
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            self.paths = [out]
        schema = pa.schema([(name, pa.string()) for name in HEADER])
        if fmt == "csv":
            self.handles = [open(p, "wb") for p in self.paths]  # noqa: SIM115 (closed by close())
            for h in self.handles:
                h.write((",".join(HEADER) + "\n").encode())
        else:
            self.handles = [pq.ParquetWriter(p, schema, compression="zstd") for p in self.paths]

    def write(self, rows: _Rows, file_index: np.ndarray | None) -> None:
        if file_index is None:
            bounds = np.array([0, len(rows.seconds)])
        else:
            order = np.argsort(file_index, kind="stable")
            rows = rows.take(order)
            bounds = np.searchsorted(file_index[order], np.arange(len(self.handles) + 1))
        if self.fmt == "csv":
            lines = self.renderer.csv_lines(rows)
            for i, h in enumerate(self.handles):
                if bounds[i + 1] > bounds[i]:
                    h.write(_text_buffer(lines, bounds[i], bounds[i + 1]))
        else:
            table = self.renderer.table(rows)
            for i, w in enumerate(self.handles):
                if bounds[i + 1] > bounds[i]:
                    w.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]))

    def close(self) -> None:
        for h in self.handles:
            h.close()


def _file_days(rng: np.random.Generator, seconds: np.ndarray, days: int, late_fraction: float) -> np.ndarray:
    """The day file of each event: its own date, 1-3 days later if late, capped at the last day."""
    day = seconds // _SECONDS_PER_DAY
    late = rng.random(len(day)) < late_fraction
    day = day + late * rng.integers(1, 4, len(day))
    return np.minimum(day, days - 1)


# --------------------------------------------------------------------------- API


# Conversations go on for days after they start: their events reach this far past the last start day.
_TAIL_DAYS = 30


def _check_in_event_window(start: dt.date, days: int) -> None:
    """Refuse dates `convo build` would reject: before the calendar, or ahead of today."""
    if start < CALENDAR_START:
        raise ValueError(f"start_date {start} is before {CALENDAR_START}, the first day convo accepts events for")
    last = start + dt.timedelta(days=days + _TAIL_DAYS)
    today = dt.datetime.now(dt.UTC).date()
    if last > today:
        raise ValueError(
            f"events from start_date {start} over {days} days run to about {last}, after today ({today}):"
            " convo build rejects events dated ahead of its clock"
        )


def generate(
    conversations: int,
    out: Path,
    *,
    seed: int = 0,
    start_date: str = "2024-01-01",
    days: int = 90,
    daily_files: bool = False,
    late_fraction: float = 0.01,
    fmt: str = "csv",
    progress: Callable[[str], None] | None = None,
) -> GenerateResult:
    """Write ``conversations`` synthetic conversations (about 12.7 events each) to ``out``.

    ``out`` is a file, or with ``daily_files=True`` a directory receiving one
    ``events_YYYY-MM-DD.<fmt>`` per day from ``start_date`` for ``days`` days.
    In that mode each event lands in the file of its own date, except
    ``late_fraction`` of them which arrive 1-3 days late; events dated after the
    last day go into the last day's file.  ``fmt`` is ``"csv"`` or
    ``"parquet"`` (the same six columns, all strings, empty agent_id as NULL).
    """
    if conversations < 0:
        raise ValueError("conversations must be >= 0")
    if days < 1:
        raise ValueError("days must be >= 1")
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', not {fmt!r}")
    if not 0.0 <= late_fraction <= 1.0:
        raise ValueError("late_fraction must be within [0, 1]")
    out = Path(out)
    start = dt.date.fromisoformat(start_date)
    _check_in_event_window(start, days)
    n_users = max(1, conversations // CONVERSATIONS_PER_USER)
    n_agents = max(MIN_AGENTS, conversations // CONVERSATIONS_PER_AGENT)
    vocab = _Vocabulary.build(n_agents)
    sink = _Sink(out, fmt, _Renderer(vocab, start), daily_files, days, start)
    events = 0
    try:
        for chunk, first in enumerate(range(0, conversations, CHUNK_CONVERSATIONS)):
            n = min(CHUNK_CONVERSATIONS, conversations - first)
            rows = _chunk_rows(seed, chunk, first, n, vocab, n_users, n_agents, days)
            file_index = None
            if daily_files:
                late_rng = np.random.default_rng([seed, chunk, 1])
                file_index = _file_days(late_rng, rows.seconds, days, late_fraction)
            sink.write(rows, file_index)
            events += len(rows.seconds)
            if progress is not None:
                progress(f"generated {first + n:,}/{conversations:,} conversations")
    finally:
        sink.close()
    return GenerateResult(files=list(sink.paths), events=events, conversations=conversations)


def main(argv: list[str] | None = None) -> int:
    g = argparse.ArgumentParser(
        prog="tools/generate.py", description="Write realistic synthetic events in the raw format (seeded)."
    )
    g.add_argument("--conversations", type=int, required=True, help="number of conversations")
    g.add_argument("--out", type=Path, required=True, help="output file (or directory with --daily-files)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--start-date", default="2024-01-01", help="first day (default 2024-01-01)")
    g.add_argument("--days", type=int, default=90, help="days the conversations start over (default 90)")
    g.add_argument("--daily-files", action="store_true", help="one file per day, with late-arriving events")
    g.add_argument("--late-fraction", type=float, default=0.01, help="share of events arriving 1-3 days late")
    g.add_argument("--format", choices=["csv", "parquet"], default="csv", help="output format (default csv)")
    args = g.parse_args(argv)
    result = generate(
        args.conversations,
        args.out,
        seed=args.seed,
        start_date=args.start_date,
        days=args.days,
        daily_files=args.daily_files,
        late_fraction=args.late_fraction,
        fmt=args.format,
        progress=lambda msg: print(msg, file=sys.stderr),
    )
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
