"""No import cycles inside gpproxy/, counting function-level imports too.

A cycle hidden in a function body still ties two modules into one: neither can
be read, tested or replaced alone. The graph is read from the source with
``ast`` (nothing is imported), so a cycle fails here before it fails at import
time in some unlucky order.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gpproxy"


def module_names(root: Path = PACKAGE) -> dict:
    """{dotted module name: file}; a package's __init__ is the package itself."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name,) + path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _known(name: str, modules) -> str | None:
    """The longest prefix of `name` that is one of our modules (an imported
    attribute such as ``gpproxy.pack.Net`` belongs to ``gpproxy.pack``)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, path: Path, modules) -> set:
    """Our modules that `module` imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from . import probe` imports a submodule; `from .pack import Net` a name of pack
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in targets:
            target = _known(name, modules)
            if target is not None and target != module:
                out.add(target)
    return out


def import_graph(root: Path = PACKAGE) -> dict:
    modules = module_names(root)
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def find_cycles(graph: dict) -> list:
    """One shortest cycle [a, b, ..., a] per strongly connected component."""
    index, low, stack, on_stack, comps = {}, {}, [], set(), []

    def strongconnect(v):  # Tarjan; the package has a few dozen modules
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return [_shortest_cycle(graph, comp) for comp in comps]


def _shortest_cycle(graph: dict, comp: list) -> list:
    """The shortest [a, ..., a] through the component (BFS from each member)."""
    members, best = set(comp), None
    for start in comp:
        prev, frontier = {start: None}, [start]
        while frontier:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & members):
                    if w == start:
                        path = [v]
                        while prev[path[-1]] is not None:
                            path.append(prev[path[-1]])
                        cycle = path[::-1] + [start]
                        if best is None or len(cycle) < len(best):
                            best = cycle
                    elif w not in prev:
                        prev[w] = v
                        nxt.append(w)
            frontier = nxt
    return best


def test_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert "gpproxy" in graph and "gpproxy.spaces" in graph  # packages are modules
    # cache.build_one imports probe_arch inside the function
    assert "gpproxy.probe" in graph["gpproxy.cache"]
    assert "gpproxy.errors" in graph["gpproxy.cache"]
    # `from . import probe` names a submodule; `from .version import __version__` a module's name
    assert {"gpproxy.probe", "gpproxy.version"} <= graph["gpproxy.export"]
    assert {"gpproxy.api", "gpproxy.run", "gpproxy.config"} <= graph["gpproxy"]
    assert "gpproxy.spaces._common" in graph["gpproxy.spaces.nds"]  # relative inside a subpackage


def test_find_cycles_names_the_cycle():
    graph = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert find_cycles(graph) == [["p.a", "p.b", "p.c", "p.a"]]
    assert find_cycles({"p.a": {"p.b"}, "p.b": set()}) == []


def test_no_import_cycles():
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "import cycle(s) in gpproxy/ (function-level imports count): " + "; ".join(
        " -> ".join(c) for c in cycles)
