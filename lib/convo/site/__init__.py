"""The documentation site: `convo docs`, and the last step of `convo run`.

`build_site(env)` writes MyST pages generated from the model metadata (`table_docs()`,
`models()`) and the environment's warehouse next to the hand-written pages of `site/`, and builds
them with Sphinx, configured by `conf.py` at the repository root, into `<reports_dir>/site/`.
Warnings are errors: a broken link or cross-reference fails the build, and the previous site
stays in place.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import time
from pathlib import Path

from convo.build.seeds import TAG_CONTACT_REASONS
from convo.config import Environment
from convo.files import copy_contents, replace_directory
from convo.models.registry import models, table_docs
from convo.reports import reads as convo_reads
from convo.reports import reuse
from convo.shown_paths import project_path
from convo.site import diagrams, incremental, pages, state

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]  # conf.py, site/ and notebooks/ live here
PROSE = REPO / "site"


class SiteBuildFailed(RuntimeError):
    pass


def build_site(env: Environment, out: Path | None = None) -> Path:
    """Build the site of `env` into `out` (default `<reports_dir>/site`); returns that folder."""
    t0 = time.perf_counter()
    out = out or env.reports_dir / "site"
    work = env.reports_dir / ".site-build"
    written = work / "src.next"
    shutil.rmtree(written, ignore_errors=True)
    copy_contents(PROSE, written, skip=("_static", "_templates"))  # with the environment's permissions
    data = _site_data(env)
    pages.write_all(data, written)
    pages.write_source_pages(written, REPO)
    changed = incremental.update_sources(written, work / "src")
    t1 = time.perf_counter()
    build_html(work / "src", out, work, title=f"convo ({env.name})")
    log.info(
        "docs site: pages written in %.1f s (%d sources changed), built in %.1f s -> %s",
        t1 - t0,
        len(changed),
        time.perf_counter() - t1,
        out,
    )
    return out


def _site_data(env: Environment) -> pages.SiteData:
    docs = table_docs()
    all_models = models()
    warehouse = state.read(env.warehouse, {name: doc.primary_key for name, doc in docs.items()})
    tables = set(docs) | set(warehouse.tables if warehouse else ())
    latest = env.reports_dir / env.name / "latest"
    notebook_reads = convo_reads.load(latest, tables) if latest.is_dir() else {}
    nodes, edges = diagrams.lineage_graph(
        all_models,
        docs,
        input_files=[project_path(p, env.root) for p in env.inputs],
        seed_files=[project_path(env.seeds_dir / TAG_CONTACT_REASONS, env.root)],
        notebook_reads=notebook_reads,
    )
    types = {name: t.types for name, t in (warehouse.tables if warehouse else {}).items()}
    sources = {d.key: diagrams.erd(d, docs, types) for d in diagrams.DESIGNS}
    sources["lineage"] = diagrams.lineage(nodes, edges)
    t0 = time.perf_counter()
    svgs = diagrams.render(sources, _cache_dir() / "diagrams", workers=env.threads)
    log.info("docs site: %d diagrams ready in %.1f s", len(svgs), time.perf_counter() - t0)
    return pages.SiteData(
        env=env,
        repo=REPO,
        docs=docs,
        models=all_models,
        state=warehouse,
        svgs=svgs,
        notebook_reads=notebook_reads,
        executed_notebooks=sorted(latest.glob("*.ipynb")) if latest.is_dir() else [],
        contact_reasons=_contact_reasons(env, warehouse),
    )


def _contact_reasons(env: Environment, warehouse: state.WarehouseState | None) -> str | None:
    """The contact-reason report's answer in short (top reasons, biggest moves, slowest reason) over
    the published data, by week, as notebook 50 gives it with its default parameters."""
    if warehouse is None or not warehouse.published_version:
        return None
    from convo.reports import contact_reasons as cr

    selection = cr.selection(env, None, None, "week")
    volume = cr.volume(env, selection)
    return cr.summary(selection, volume, cr.movers(volume), cr.resolution(env, selection)).data


def _cache_dir() -> Path:
    """Per user, not per environment: SVGs are named by the hash of their source, so every build
    on the machine (each environment, each test project) can reuse them."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convo"


def build_html(src: Path, out: Path, work: Path, title: str) -> None:
    """Build the MyST pages in `src` with the repository's conf.py into `out`, via `work`.

    Incremental (`incremental.py`): Sphinx's environment and output are kept in `work`, and only
    the pages whose sources changed, or that changes elsewhere reach, are read and written again.
    The output is then copied into a fresh folder and swapped in: readers never see half a site,
    and a failed build leaves the previous one in place (and the next build starts over).

    In-process rather than `sphinx-build` in a subprocess: the caller (`convo run`, the tests)
    has already imported most of what the build needs, which saves seconds per build.
    """
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    warnings = io.StringIO()
    incremental.start_over_unless_same_files(src, work)
    try:
        with patch_docutils(REPO), docutils_namespace():
            app = Sphinx(
                src,
                REPO,
                work / "html",
                work / "doctrees",
                "html",
                confoverrides={"html_title": title, "nitpicky": True, "convo_code": reuse.code_digest()},
                status=None,
                warning=warnings,
                warningiserror=True,  # every warning fails the build, after all are reported
            )
            incremental.rebuild_what_changes_reach(app)
            app.build()
    except BaseException:
        incremental.forget(work)
        raise
    if app.statuscode:
        incremental.forget(work)
        raise SiteBuildFailed(f"the site has errors (sources kept in {src}):\n{warnings.getvalue().strip()}")
    incremental.record_files(src, work)
    fresh = work / "html.copy"
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.copytree(work / "html", fresh)
    replace_directory(out, fresh)
