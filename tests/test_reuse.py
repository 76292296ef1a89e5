"""Which earlier report `convo run` may reuse (convo/reports/reuse.py): only one made from exactly
the same inputs, with everything rendered from it present. No kernel runs here: the end-to-end
case (a second run reusing the reports and executing the ingest report) is in test_notebooks.py."""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path

import nbformat
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_env
from convo.reports import reuse

BUILT_AT = datetime.datetime(2026, 12, 3, 19, 23, 46)


def _source(tmp_path: Path, text: str = "# %%\nx = 1\n") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "20_report.py"
    source.write_text(text)
    return source


def _executed(folder: Path, inputs: dict | None, companions=reuse.COMPANIONS) -> Path:
    """An executed notebook as a run leaves it: its inputs in its metadata, its HTML and reads beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    if inputs is not None:
        nb.metadata[reuse.METADATA_KEY] = inputs
    notebook = folder / "20_report.ipynb"
    nbformat.write(nb, notebook)
    for suffix in companions:
        notebook.with_suffix(suffix).write_text(f"rendered {suffix}")
    return notebook


def test_the_inputs_name_the_version_the_source_the_parameters_the_code_and_the_configuration(tmp_path):
    env = make_env(tmp_path)
    key = reuse.inputs(_source(tmp_path), {"env": "test", "run_date": "2024-04-15"}, env, 7, BUILT_AT)
    assert key["published_version"] == 7 and key["built_at"] == "2026-12-03T19:23:46"
    assert key["parameters"] == {"env": "test", "run_date": "2024-04-15"}
    assert len(key["notebook_sha256"]) == len(key["code_sha256"]) == len(key["configuration_sha256"]) == 64
    assert json.loads(json.dumps(key)) == key  # kept in the notebook's metadata as it is


def test_any_change_of_an_input_changes_the_inputs(tmp_path):
    env = make_env(tmp_path)
    source = _source(tmp_path)
    base = reuse.inputs(source, {"env": "test"}, env, 7, BUILT_AT)
    assert reuse.inputs(source, {"env": "test"}, env, 7, BUILT_AT) == base  # the same inputs, the same key
    changed = [
        reuse.inputs(source, {"env": "test"}, env, 8, BUILT_AT),  # another version
        reuse.inputs(source, {"env": "test"}, env, 7, BUILT_AT + datetime.timedelta(seconds=1)),  # built again
        reuse.inputs(source, {"env": "test", "run_date": "2024-04-16"}, env, 7, BUILT_AT),  # another parameter
        reuse.inputs(source, {"env": "test"}, dataclasses.replace(env, threads=env.threads + 1), 7, BUILT_AT),
        reuse.inputs(_source(tmp_path / "other", "# %%\nx = 2\n"), {"env": "test"}, env, 7, BUILT_AT),
    ]
    assert all(key != base for key in changed)


def test_a_notebook_that_shows_this_run_is_never_reused():
    assert not reuse.reusable({"env": {}, "run_id": {}})
    assert reuse.reusable({"env": {}, "run_date": {}})


@settings(max_examples=30, deadline=None)
@given(
    recorded=st.one_of(st.none(), st.sampled_from([{"published_version": 1}, {"published_version": 2}])),
    present=st.sets(st.sampled_from(reuse.COMPANIONS)),
)
def test_an_earlier_report_is_reused_exactly_when_its_inputs_match_and_it_is_whole(tmp_path_factory, recorded, present):
    folder = tmp_path_factory.mktemp("earlier")
    _executed(folder, recorded, companions=sorted(present))
    wanted = {"published_version": 1}
    found = reuse.earlier_report(folder, "20_report", wanted)
    assert (found is not None) == (recorded == wanted and present == set(reuse.COMPANIONS))
    assert reuse.earlier_report(None, "20_report", wanted) is None  # no earlier good run
    assert reuse.earlier_report(folder, "30_other", wanted) is None


def test_a_reused_report_is_copied_whole(tmp_path):
    earlier = _executed(tmp_path / "run-1", {"published_version": 1})
    (tmp_path / "run-2").mkdir()
    copy = reuse.copy_report(earlier, tmp_path / "run-2")
    assert copy == tmp_path / "run-2" / "20_report.ipynb"
    for suffix in (".ipynb", *reuse.COMPANIONS):
        assert copy.with_suffix(suffix).read_bytes() == earlier.with_suffix(suffix).read_bytes()


def test_an_unreadable_earlier_notebook_is_not_reused(tmp_path):
    earlier = _executed(tmp_path, {"published_version": 1})
    earlier.write_text("{not json")
    assert reuse.earlier_report(tmp_path, "20_report", {"published_version": 1}) is None


def test_the_code_digest_follows_every_file_of_the_package_but_not_its_bytecode(tmp_path):
    package = tmp_path / "convo"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "module.py").write_text("x = 1\n")
    before = reuse.digest_of(package)
    (package / "__pycache__" / "module.cpython-311.pyc").write_bytes(b"compiled")
    assert reuse.digest_of(package) == before
    (package / "module.py").write_text("x = 2\n")
    changed = reuse.digest_of(package)
    (package / "module.py").write_text("x = 1\n")
    (package / "models.yml").write_text("a: 1\n")
    assert len({before, changed, reuse.digest_of(package)}) == 3
