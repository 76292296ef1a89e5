"""Mermaid diagrams generated from the model metadata, rendered to SVG at build time.

The ERDs come from `table_docs()` (columns, primary keys, `references`), the lineage from the
runner's dependency graph (`models()` inputs). Rendering uses mermaidx (Mermaid in an embedded
JavaScript engine, from PyPI): the pages then carry plain inline SVG, with no script and no
network when viewed. Rendering costs seconds per diagram, so SVGs are cached by the hash of
their source and rendered in parallel when several change at once.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from convo import escape
from convo.models.registry import SOURCES, Model, TableDoc

# Natural sizes (no useMaxWidth): the page scales a diagram down to fit its width. mermaidx sizes
# boxes for DejaVu Sans; site/_static/convo.css sets the labels in it, so the theme's fonts cannot
# make them overflow. (SVG-text labels, `htmlLabels: false`, would avoid needing that CSS but make
# the ERDs about ten times slower to lay out.)
MERMAID_CONFIG = {
    "er": {"useMaxWidth": False},
    "flowchart": {"useMaxWidth": False, "wrappingWidth": 600},  # never wrap a table name
    "themeVariables": {"fontFamily": "DejaVu Sans, Verdana, Arial, sans-serif"},
}
# Lineage nodes are coloured by layer, in this order in the legend. Layers are colours rather
# than boxes: Mermaid's layout of cross-box edges is slower (15-20 s against 7 s) and tangled.
LAYER_COLOURS = {
    "inputs": "#fdf2d0",
    "sources": "#f3e5f5",
    "staging": "#e3f2fd",
    "intermediate": "#e0f7fa",
    "dimensions": "#e8f5e9",
    "facts": "#fff3e0",
    "marts": "#fce4ec",
    "notebooks": "#eeeeee",
}
OTHER_LAYER = "#ffffff"


@dataclass(frozen=True)
class Design:
    """A dimensional design: its central tables, and the tables their keys lead to."""

    key: str
    title: str
    centre: tuple[str, ...]  # tables named by the design
    centre_layers: tuple[str, ...] = ()  # every table of these layers joins the centre (e.g. marts)

    def tables(self, docs: Mapping[str, TableDoc]) -> list[str]:
        missing = [t for t in self.centre if t not in docs]
        if missing:
            raise ValueError(f"design {self.key!r} names tables that are not documented: {missing}")
        centre = [*self.centre, *(n for n, d in docs.items() if d.layer in self.centre_layers)]
        referenced = [c.references.split(".")[0] for t in centre for c in docs[t].foreign_keys]
        return list(dict.fromkeys([*centre, *(t for t in referenced if t in docs)]))


# The two designs the data-model page compares. Which fact belongs to which design is the one
# editorial choice here; every table, column and relationship shown follows from the metadata.
# The agent-conversation bridge is in the star: it is how a conversation reaches dim_agent.
STAR = Design(
    "star",
    "Star schema",
    ("fact_conversation_lifecycle", "fact_conversation_tags", "int_agent_conversations"),
    ("marts",),
)
EVENTS = Design("events", "Factless event fact", ("fact_conversation_events",))
DESIGNS = (STAR, EVENTS)


def _type_word(data_type: str | None) -> str:
    """A DuckDB type as one Mermaid attribute-type word (`DECIMAL(18,3)` -> `DECIMAL(18_3)`)."""
    if not data_type:
        return "unbuilt"
    return re.sub(r"[^A-Za-z0-9_()\[\]]", "_", data_type)


MEASURE_LAYERS = ("facts", "marts")
_NUMBER = re.compile(r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|U\w*INT|FLOAT|DOUBLE|REAL|DECIMAL)\b")


def _is_number(data_type: str | None) -> bool:
    return bool(data_type and _NUMBER.match(data_type))


def erd(design: Design, docs: Mapping[str, TableDoc], types: Mapping[str, Mapping[str, str]]) -> str:
    """An erDiagram of the design's keys, relationships and the facts' measures.

    Key columns, and the numeric columns of the facts (their measures, marked "measure"); other
    columns are listed on the table's page, since Mermaid's layout time grows with the attributes
    (about 25 s for the full star schema against 4 s for its keys).
    `types` maps table -> column -> DuckDB type (empty when the table is not built).
    """
    tables = design.tables(docs)
    lines = ["erDiagram"]
    for name in tables:
        doc = docs[name]
        lines.append(f"  {name} {{")
        for col in doc.columns:
            keys = [k for k, is_key in (("PK", col.name in doc.primary_key), ("FK", bool(col.references))) if is_key]
            data_type = types.get(name, {}).get(col.name)
            if keys:
                lines.append(f"    {_type_word(data_type)} {col.name} {', '.join(keys)}")
            elif doc.layer in MEASURE_LAYERS and not col.load_time and _is_number(data_type):
                lines.append(f'    {_type_word(data_type)} {col.name} "measure"')
        lines.append("  }")
    for name in tables:
        for col in docs[name].foreign_keys:
            parent = col.references.split(".")[0]
            if parent in tables:
                lines.append(f'  {parent} ||--o{{ {name} : "{col.name}"')
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class LineageNode:
    id: str
    label: str
    layer: str


def lineage_graph(
    models: Mapping[str, Model],
    docs: Mapping[str, TableDoc],
    input_files: Iterable[str],
    seed_files: Iterable[str],
    notebook_reads: Mapping[str, Iterable[str]],
) -> tuple[list[LineageNode], list[tuple[str, str]]]:
    """Nodes and edges from input files through sources and models to the notebooks."""
    nodes = [LineageNode(f"input_{i}", path, "inputs") for i, path in enumerate(input_files)]
    seed_nodes = [LineageNode(f"seed_{i}", path, "inputs") for i, path in enumerate(seed_files)]
    nodes += seed_nodes
    edges: list[tuple[str, str]] = []
    loaded = {"ingestion": [n.id for n in nodes if n.id.startswith("input_")], "seed": [n.id for n in seed_nodes]}
    # Tables the runner loads rather than computes: the model sources and what ingestion writes.
    for name in dict.fromkeys([*SOURCES, *(n for n, d in docs.items() if d.built_by != "model")]):
        built_by = docs[name].built_by if name in docs else "ingestion"
        nodes.append(LineageNode(name, name, "sources"))
        edges += [(f, name) for f in loaded.get(built_by, [])]
    for m in models.values():
        nodes.append(LineageNode(m.name, m.name, m.layer))
        edges += [(i, m.name) for i in m.inputs]
    for notebook, tables in notebook_reads.items():
        node_id = "notebook_" + re.sub(r"\W", "_", notebook)
        nodes.append(LineageNode(node_id, notebook, "notebooks"))
        edges += [(t, node_id) for t in tables]
    return nodes, edges


def lineage(nodes: list[LineageNode], edges: list[tuple[str, str]]) -> str:
    """A top-down flowchart, each node coloured by its layer (top-down fits a page's width)."""
    lines = ["flowchart TB"]
    for layer in dict.fromkeys(n.layer for n in nodes):
        lines.append(f"  classDef {layer} fill:{LAYER_COLOURS.get(layer, OTHER_LAYER)},stroke:#555")
    for n in nodes:
        shape = '[/"{}"/]' if n.layer == "inputs" else '(["{}"])' if n.layer == "notebooks" else '["{}"]'
        lines.append(f"  {n.id}{shape.format(escape.mermaid(n.label))}:::{n.layer}")
    lines += [f"  {a} --> {b}" for a, b in edges]
    return "\n".join(lines) + "\n"


# -- rendering --------------------------------------------------------------------------------
def _cache_key(source: str) -> str:
    import mermaidx

    payload = json.dumps([source, MERMAID_CONFIG, mermaidx.__version__], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def render(sources: Mapping[str, str], cache_dir: Path, workers: int = 2) -> dict[str, str]:
    """SVG text for each named Mermaid source; ids are made unique so several fit on one page."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    svgs = {name: cache_dir / f"{_cache_key(src)}.svg" for name, src in sources.items()}
    todo = [name for name, svg in svgs.items() if not svg.exists()]
    for name in todo:
        svgs[name].with_suffix(".mmd").write_text(sources[name])
    # Worker processes rather than a multiprocessing pool: a spawned pool re-imports __main__,
    # which hangs when the caller is `python -c` or stdin. Each worker loads Mermaid once.
    batches = [todo[i::workers] for i in range(min(workers, len(todo)))]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", __name__, *(str(svgs[n].with_suffix(".mmd")) for n in batch)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for batch in batches
    ]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"Mermaid rendering failed: {err.strip()}")
    # mermaidx always names the SVG "my-svg", and its CSS is scoped by that id.
    return {name: svg.read_text().replace("my-svg", f"diagram-{name}") for name, svg in svgs.items()}


def _render_files(paths: list[str]) -> None:
    """Worker: render each .mmd file to the .svg beside it (written atomically: the cache trusts it)."""
    import mermaidx

    for path in map(Path, paths):
        svg = mermaidx.render(path.read_text(), config=MERMAID_CONFIG).svg()
        tmp = path.with_suffix(".svg.tmp")
        tmp.write_text(svg)
        tmp.replace(path.with_suffix(".svg"))
        path.unlink()


if __name__ == "__main__":
    _render_files(sys.argv[1:])
