"""The package's layers, read from the source: no import loop, and nothing imports upward.

Layers, lowest first: the base modules at the top of `lib/convo/` (config, files, lock...), then
`models/`, `engine/`, `audit/`, `build/`, `backends/`, `reports/`, `site/`, and `cli.py` last. A
module may import from its own layer or lower ones. Every import counts, a function-local one
too: deferring an import hides a dependency from the reader, it does not remove it.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "convo"
LAYERS = ("base", "models", "engine", "audit", "build", "backends", "reports", "site", "cli")


def module_name(path: Path, package: Path) -> str:
    """`lib/convo/site/links.py` -> `convo.site.links`; a package's `__init__.py` is the package."""
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules of `known` that `module`'s source imports, wherever the import statement is.

    `from a.b import c` names module `a.b.c` when that is a module, else `a.b` (c is a name in it);
    a relative import is resolved against the module's package."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m in known and m != module}


def import_graph(package: Path) -> dict[str, set[str]]:
    """Each module of the package, and the package's modules it imports."""
    sources = {
        module_name(path, package): (path, ast.parse(path.read_text(), str(path))) for path in package.rglob("*.py")
    }
    known = set(sources)
    return {name: imported(tree, name, path.name == "__init__.py", known) for name, (path, tree) in sources.items()}


def layer(module: str) -> str | None:
    """The layer of a module of the `convo` package; None for a subpackage no layer names."""
    parts = module.split(".")
    if len(parts) == 1:
        return "base"  # the package's own __init__
    if parts[1] == "cli":
        return "cli"
    if len(parts) == 2 and not (PACKAGE / parts[1]).is_dir():
        return "base"  # a module at the top of lib/convo/
    return parts[1] if parts[1] in LAYERS else None


def upward_imports(graph: dict[str, set[str]], layer_of) -> list[str]:
    """`a (layer) imports b (higher layer)` for every import that goes up the layer order."""
    found = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module)):
                found.append(f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import loops: strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


# -- the machinery, on hand-made cases ---------------------------------------------------------
def test_a_function_local_and_a_relative_import_are_edges():
    tree = ast.parse(
        "import os\nfrom convo import config\n"
        "def f():\n    from convo.site import links, build_site\n    from . import state\n"
        "    from .engine import store\n"
    )
    known = {"convo", "convo.config", "convo.site", "convo.site.links", "convo.build.state", "convo.build.engine"}
    # `from convo.site import build_site`: a name in convo.site; `from .engine import store`: in convo.build.engine.
    assert imported(tree, "convo.build.runner", False, known) == {
        "convo.config",
        "convo.site",
        "convo.site.links",
        "convo.build.state",
        "convo.build.engine",
    }


def test_loops_are_found_and_a_chain_is_not_one():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": set(), "g": {"h"}, "h": {"g"}}
    assert cycles(graph) == [["a", "b", "c"], ["g", "h"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_an_upward_import_is_found_and_a_downward_or_sideways_one_is_not():
    layers = {"convo.site.links": "site", "convo.cli": "cli", "convo.config": "base", "convo.site.pages": "site"}
    graph = {"convo.site.links": {"convo.cli", "convo.config", "convo.site.pages"}, "convo.cli": {"convo.site.links"}}
    assert upward_imports(graph, layers.get) == ["convo.site.links (site) imports convo.cli (cli)"]


def test_layers_of_module_names():
    assert [layer(m) for m in ("convo", "convo.config", "convo.cli", "convo.site", "convo.build.runner")] == [
        "base",
        "base",
        "cli",
        "site",
        "build",
    ]


# -- the package --------------------------------------------------------------------------------
def test_every_module_lies_in_a_layer():
    graph = import_graph(PACKAGE)
    assert "convo.build.runner" in graph and "convo.cli" in graph
    assert not [m for m in graph if layer(m) is None], "a subpackage that no layer names"


def test_the_package_has_no_import_loop():
    loops = cycles(import_graph(PACKAGE))
    assert not loops, "import loops:\n" + "\n".join(", ".join(loop) for loop in loops)


def test_no_module_imports_from_a_higher_layer():
    found = upward_imports(import_graph(PACKAGE), layer)
    assert not found, "upward imports (layers, lowest first: " + ", ".join(LAYERS) + "):\n" + "\n".join(found)
