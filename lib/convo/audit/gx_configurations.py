"""Make Great Expectations 1.24 build each expectation's configuration once per validation.

`Expectation.configuration` is a property that builds a new configuration from the
expectation's fields (a pydantic `dict()`, then an `ExpectationConfiguration`) on every access,
and one validation asks each expectation for it about 60 times: once per domain, success and
runtime keyword, then once per metric it depends on. A build of one conversation spends 0.09 to
0.19 s of its 1.6 s on that (BENCHMARKS.md, "configurations built once").

Inside `built_once()`, the property returns the configuration it built first for the same
expectation object. GX's validator makes its expectation objects from configurations when it
validates and never changes their fields afterwards (checked on great-expectations 1.24.1), so
the first configuration stays exact. Outside the block the property is GX's own. It patches a
public GX class, so re-check it on every GX upgrade: `tests/test_quality.py` compares every
suite's results with and without it.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from great_expectations.expectations.expectation import Expectation

GX_PROPERTY = Expectation.configuration  # GX's own, which builds anew on every access
_BUILD = GX_PROPERTY.fget
# id(expectation) -> (expectation, its configuration); the expectation is kept so that its id
# cannot be reused by another object while the block lasts.
_built: contextvars.ContextVar[dict | None] = contextvars.ContextVar("gx_configurations_built", default=None)


def _configuration(expectation: Expectation):
    built = _built.get()
    if built is None:
        return _BUILD(expectation)
    entry = built.get(id(expectation))
    if entry is None or entry[0] is not expectation:
        entry = built[id(expectation)] = (expectation, _BUILD(expectation))
    return entry[1]


def build_configurations_once() -> None:
    """Install the property (idempotent); it caches only inside `built_once()`."""
    Expectation.configuration = property(_configuration, doc=GX_PROPERTY.__doc__)


@contextlib.contextmanager
def built_once() -> Iterator[None]:
    """Each expectation's configuration is built once while the block lasts (one validation)."""
    token = _built.set({})
    try:
        yield
    finally:
        _built.reset(token)
