"""The site's incremental build: only what changed is read and written again, and the result is
what a build from nothing gives (real Sphinx, the site's conf.py, small hand-made sources)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from convo.site import SiteBuildFailed, build_html
from convo.site.incremental import update_sources

pytestmark = pytest.mark.slow

# The build's clock, per page written: in the footer and in a meta tag of the head.
LAST_UPDATED = re.compile(r'Last updated on [0-9:\- ]+UTC|<meta name="docbuild:last-update" content="[0-9:\- ]+UTC"/>')


def _site(pages: dict[str, str]) -> dict[str, str]:
    """A home page listing `pages` in its table of contents, and the pages."""
    toctree = "\n".join(sorted(pages))
    return {"index.md": f"# Home\n\n```{{toctree}}\n{toctree}\n```\n", **{f"{n}.md": t for n, t in pages.items()}}


def _page(title: str, label: str, body: str = "", links: tuple[str, ...] = ()) -> str:
    refs = "".join(f"\n\nSee {{ref}}`{target}`." for target in links)
    return f"({label})=\n# {title}\n\n{body}{refs}\n"


def _build(sources: dict[str, str], tmp: Path, work: Path, out: Path) -> None:
    """Write `sources` as the site build does (`update_sources`), then build incrementally in `work`."""
    written = tmp / "written"
    written.mkdir(parents=True)
    for name, text in sources.items():
        (written / name).write_text(text, encoding="utf-8")
    update_sources(written, work / "src")
    build_html(work / "src", out, work, title="test")


def _html(out: Path) -> dict[str, str]:
    return {
        str(p.relative_to(out)): LAST_UPDATED.sub("", p.read_text(encoding="utf-8"))
        for p in sorted(out.rglob("*.html"))
    }


def _from_nothing(sources: dict[str, str], tmp: Path) -> dict[str, str] | None:
    """The HTML of a build of `sources` with nothing kept; None if it fails."""
    fresh = tmp / "fresh"
    shutil.rmtree(fresh, ignore_errors=True)
    try:
        _build(sources, fresh, fresh / "work", fresh / "out")
    except SiteBuildFailed:
        return None
    return _html(fresh / "out")


def _mtimes(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*.html")}


def test_a_build_with_nothing_changed_writes_no_page_and_a_change_writes_only_the_pages_it_reaches(tmp_path):
    work, out = tmp_path / "work", tmp_path / "site"
    first = _site({"a": _page("Alpha", "a", "one"), "b": _page("Beta", "b", links=("a",))})
    _build(first, tmp_path, work, out)
    written = {k: v for k, v in _mtimes(work / "html").items() if not k.startswith(("genindex", "search"))}
    _build(first, tmp_path, work, out)
    assert {k: _mtimes(work / "html")[k] for k in written} == written

    second = _site({"a": _page("Alpha", "a", "two"), "b": _page("Beta", "b", links=("a",))})
    _build(second, tmp_path, work, out)
    now = _mtimes(work / "html")
    # The page and the page whose table of contents lists it (Sphinx's own rule); not b, which links to it.
    assert sorted(k for k in written if now[k] != written[k]) == ["a.html", "index.html"]
    assert "two" in (out / "a.html").read_text() and _html(out) == _from_nothing(second, tmp_path)


def test_a_changed_title_is_written_into_every_page_that_shows_it(tmp_path):
    work, out = tmp_path / "work", tmp_path / "site"
    _build(_site({"a": _page("Alpha", "a"), "b": _page("Beta", "b", links=("a",))}), tmp_path, work, out)
    renamed = _site({"a": _page("Aleph", "a"), "b": _page("Beta", "b", links=("a",))})
    _build(renamed, tmp_path, work, out)
    assert "Aleph" in (out / "b.html").read_text()  # its source did not change; its navigation and link did
    assert "Alpha" not in (out / "b.html").read_text()
    assert _html(out) == _from_nothing(renamed, tmp_path)


def test_a_page_linking_to_a_removed_page_fails_the_build_and_every_build_after_until_fixed(tmp_path):
    work, out = tmp_path / "work", tmp_path / "site"
    _build(_site({"a": _page("Alpha", "a"), "b": _page("Beta", "b", links=("a",))}), tmp_path, work, out)
    before = _html(out)
    broken = _site({"b": _page("Beta", "b", links=("a",))})  # b's source is unchanged
    for _ in range(2):  # the second build must not pass because the first read b already
        with pytest.raises(SiteBuildFailed, match="undefined label: 'a'"):
            _build(broken, tmp_path, work, out)
        assert _html(out) == before  # the previous site stays
    fixed = _site({"b": _page("Beta", "b")})
    _build(fixed, tmp_path, work, out)
    assert _html(out) == _from_nothing(fixed, tmp_path)


PAGES = ("a", "b", "c")
versions = st.lists(
    st.dictionaries(
        st.sampled_from(PAGES),
        st.tuples(
            st.sampled_from(["Alpha", "Beta", "Gamma"]),  # titles may repeat and change
            st.sampled_from(["", "one", "two"]),
            st.lists(st.sampled_from(PAGES), max_size=2, unique=True),  # links, maybe to a page not there
        ),
        min_size=1,
    ),
    min_size=2,
    max_size=3,
)


@settings(max_examples=6, deadline=None, phases=[Phase.explicit, Phase.generate])  # shrinking costs minutes of builds
@given(versions)
def test_any_sequence_of_builds_gives_what_a_build_from_nothing_gives(tmp_path_factory, sequence):
    tmp = tmp_path_factory.mktemp("sequence")
    work, out = tmp / "work", tmp / "site"
    for version in sequence:
        sources = _site({n: _page(t, n, body, tuple(links)) for n, (t, body, links) in version.items()})
        expected = _from_nothing(sources, tmp)
        try:
            _build(sources, tmp, work, out)
            got = _html(out)
        except SiteBuildFailed:
            got = None
        assert got == expected
