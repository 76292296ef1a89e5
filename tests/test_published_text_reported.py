"""The hostile values of the original report, published by a whole `convo run` as text only (see
tests/test_published_text.py, which runs one generated set; a file of its own, so that the two
runs, a minute each, go to two workers side by side)."""

import pytest

from test_published_text import ISSUE_VALUES, assert_published_as_text_only

pytestmark = pytest.mark.slow


def test_the_reported_values_are_published_as_text_only(tmp_path_factory):
    assert_published_as_text_only(tmp_path_factory, ISSUE_VALUES)
