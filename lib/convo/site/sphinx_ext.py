"""Sphinx roles that tie the site's prose to the code: `{table}`, `{src}` and `{cli}`.

    {table}`fact_conversation_lifecycle`  -> the table's page
    {src}`lib/convo/build/runner.py`      -> the page showing that file (or folder)
    {cli}`rollback`                       -> `convo rollback` in the CLI reference

A target that exists resolves through Sphinx's own cross-references, so a missing page or label
is a build warning (an error under -W). A target that does not exist in this checkout is shown
with a "not in this checkout yet" marker, so a page can name work another issue delivers.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx

from convo.models.registry import table_docs
from convo.site import links


def _xref(env, text: str, reftype: str, target: str) -> nodes.Node:
    node = addnodes.pending_xref(
        "",
        refdomain="std",
        reftype=reftype,
        reftarget=target,
        refexplicit=True,
        refwarn=True,
        refdoc=env.docname,
    )
    node += nodes.literal(text, text)
    return node


def _pending(text: str) -> nodes.Node:
    node = nodes.inline(classes=["convo-pending"])
    node += nodes.literal(text, text)
    node += nodes.emphasis(f" ({links.PENDING})", f" ({links.PENDING})")
    return node


def table_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    env = inliner.document.settings.env
    if text not in table_docs():
        return [_pending(text)], []
    return [_xref(env, text, "ref", links.table_label(text))], []


def src_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    env = inliner.document.settings.env
    root = Path(env.app.confdir)
    if not links.source_exists(root, text):
        return [_pending(text)], []
    return [_xref(env, text, "doc", "/" + links.source_docname(text))], []


def cli_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    env = inliner.document.settings.env
    label = f"convo {text}"
    if text not in links.subcommands():
        return [_pending(label)], []
    return [_xref(env, label, "ref", links.cli_label(text))], []


def setup(app: Sphinx) -> dict:
    app.add_role("table", table_role)
    app.add_role("src", src_role)
    app.add_role("cli", cli_role)
    # The code the roles and generated pages come from (`reuse.code_digest`): when it changes,
    # Sphinx reads every page again (incremental.py).
    app.add_config_value("convo_code", "", "env")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
