"""Reference outputs for the notebooks' regression test (nbval), and the sample project they come from.

`notebooks/reference/NN_name.ipynb` is `notebooks/NN_name.py` executed, in order, on the sample
events in a fresh sample project: a throwaway copy of the project's configuration, seeds and
expectations where `convo build` has built the sample events, so the outputs depend only on the
code and the sample data. The test suite runs `pytest --nbval` on copies of these references in another fresh sample
project and fails when any compared output differs. After an intended change to a model, a
notebook or the reporting code, regenerate them and review the diff:

    .venv/bin/python tools/notebook_references.py

The references keep only what nbval compares: no image data and no output of the cells tagged
`nbval-ignore-output` (run ids, times, paths), which would only make every refresh a diff.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from convo.config import CONFIG_NAME
from convo.reports.notebooks import KERNEL, NOTEBOOKS_DIR, discover, read_notebook

REFERENCE_DIR = Path(NOTEBOOKS_DIR) / "reference"
# What an environment reads from the project root besides its config: seeds and expectation suites.
PROJECT_INPUTS = ("seeds", "expectations")
IGNORED = "nbval-ignore-output"  # the tag of cells whose output nbval does not compare


def sample_project(root: Path, dest: Path) -> Path:
    """A fresh project in `dest`: the config, seeds and expectations of `root`, no warehouse yet."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / CONFIG_NAME, dest / CONFIG_NAME)
    for name in PROJECT_INPUTS:
        if (root / name).is_dir():
            shutil.copytree(root / name, dest / name)
    (dest / NOTEBOOKS_DIR).mkdir()
    return dest


def kernel_environment(project: Path) -> dict[str, str]:
    """Environment variables for kernels working on `project` (they inherit them from their parent)."""
    return {**os.environ, "CONVO_CONFIG": str(project / CONFIG_NAME)}


def build_sample(project: Path, extra_env: dict[str, str] | None = None) -> None:
    """`convo build` of the sample events in `project`, in a process of its own: the notebooks only
    read what a build published (`convo run` builds before it runs them)."""
    result = subprocess.run(
        [sys.executable, "-m", "convo.cli", "build"],
        cwd=project,
        env={**kernel_environment(project), **(extra_env or {})},
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise RuntimeError(f"the sample build in {project} failed:\n{result.stderr}")


def cell_sources(nb) -> list[tuple[str, str, list[str]]]:
    """What a reference must share with its source: every cell's type, source and tags."""
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def stale(root: Path) -> list[str]:
    """Notebooks whose reference is missing, out of date with the source, or left over."""
    import nbformat

    sources = {p.stem: p for p in discover(root / NOTEBOOKS_DIR)}
    references = {p.stem: p for p in (root / REFERENCE_DIR).glob("*.ipynb")}
    problems = [f"{name}: no reference" for name in sorted(set(sources) - set(references))]
    problems += [f"{name}: reference without a notebook" for name in sorted(set(references) - set(sources))]
    for name in sorted(set(sources) & set(references)):
        if cell_sources(read_notebook(sources[name])) != cell_sources(nbformat.read(references[name], as_version=4)):
            problems.append(f"{name}: the reference's cells differ from {sources[name].name}")
    return problems


def _comparable(nb):
    """Only what nbval compares: no image data, no output of cells it ignores (ids, times, paths)."""
    for cell in nb.cells:
        if IGNORED in cell.metadata.get("tags", []):
            cell.outputs = []
        for output in cell.get("outputs", []):
            for mime in [m for m in output.get("data", {}) if m.startswith("image/")]:
                del output["data"][mime]
    return nb


def refresh(root: Path) -> list[Path]:
    """Execute every notebook in order in a fresh sample project and store the results as references."""
    import nbformat
    from nbclient import NotebookClient

    written = []
    (root / REFERENCE_DIR).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="convo-references-") as tmp:
        project = sample_project(root, Path(tmp))
        build_sample(project)
        os.environ.update(kernel_environment(project))
        cwd = project / NOTEBOOKS_DIR  # where nbval starts its kernels: next to the notebook
        for source in discover(root / NOTEBOOKS_DIR):
            nb = read_notebook(source)
            # Same kernel, working directory and environment as the nbval run in the tests.
            NotebookClient(
                nb, kernel_name=KERNEL, timeout=600, record_timing=False, resources={"metadata": {"path": str(cwd)}}
            ).execute()
            target = root / REFERENCE_DIR / f"{source.stem}.ipynb"
            nbformat.write(_comparable(nb), target)
            written.append(target)
            print(f"wrote {target}", file=sys.stderr)
    return written


if __name__ == "__main__":
    from convo.config import find_config

    refresh(find_config().parent)
