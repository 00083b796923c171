"""The package's import graph: its circles and its climbs (an import of a layer above), printed.

    python scripts/import_graph.py          # prints "circles: none" and "climbs: none", exits 1 otherwise

Imports only made for type checkers (``if TYPE_CHECKING:``) are left out: they never run.
The layers, highest first; a subpackage may import from its own layer's siblings only where
listed together in a set below, and from any layer under it.
"""

from __future__ import annotations

import sys

import grimp
import networkx as nx

PACKAGE = "alienstay"
LAYERS: tuple[str | set[str], ...] = (
    "testing",  # tiny models and fakes for the tests and benchmarks
    "cli",
    "web",
    "stages",
    "notes",
    {"persona", "similarity", "captioning", "sources"},
    {"editing", "clustering", "preprocess", "labelled", "wordindex"},
    "tagging",
    "encoders",
    "vocabulary",
    {"runtime", "workspace"},
)


def graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE, exclude_type_checking_imports=True)


def circles(imports: grimp.ImportGraph) -> list[list[str]]:
    """Every set of modules that import each other round a loop (strongly connected, more than one)."""
    directed = nx.DiGraph((module, imported) for module in imports.modules
                          for imported in imports.find_modules_directly_imported_by(module))
    return sorted(sorted(group) for group in nx.strongly_connected_components(directed) if len(group) > 1)


def climbs(imports: grimp.ImportGraph) -> list[str]:
    """Every import of a module in a higher layer, as "importer -> imported (line N)"."""
    layers = [grimp.Layer(*sorted(layer), independent=False) if isinstance(layer, set) else grimp.Layer(layer)
              for layer in LAYERS]
    found = []
    for dependency in imports.find_illegal_dependencies_for_layers(layers=layers, containers={PACKAGE}):
        for route in dependency.routes:
            for importer in route.heads:
                for imported in route.tails:
                    found.append(f"{importer} -> {imported} ({dependency.importer} under {dependency.imported})")
    return sorted(found)


def unlayered(imports: grimp.ImportGraph) -> list[str]:
    """Subpackages and root modules no layer names: every one must have its place."""
    named = {name for layer in LAYERS for name in ([layer] if isinstance(layer, str) else layer)}
    children = {module.split(".")[1] for module in imports.modules if module.count(".") >= 1}
    return sorted(children - named)


def main() -> int:
    imports = graph()
    found = {"circles": [" <-> ".join(group) for group in circles(imports)], "climbs": climbs(imports),
             "not in a layer": unlayered(imports)}
    for title, items in found.items():
        print(f"{title}: {'none' if not items else len(items)}")
        for item in items:
            print(f"  {item}")
    return 1 if any(found.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
