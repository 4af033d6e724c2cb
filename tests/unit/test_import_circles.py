"""No autokey module imports itself through others: a circle makes import order matter and
hides which module is the lower one. Imports inside functions and under TYPE_CHECKING count."""

from __future__ import annotations

import grimp


def import_circles(graph: grimp.ImportGraph) -> set[frozenset[str]]:
    """Each set of modules that import one another, directly or through others."""
    return {
        frozenset({module, *circle})
        for module in graph.modules
        if (circle := graph.find_upstream_modules(module) & graph.find_downstream_modules(module))
    }


def test_no_autokey_module_imports_itself_through_others() -> None:
    circles = import_circles(grimp.build_graph("autokey", cache_dir=None))

    assert not circles, f"import circles: {[sorted(circle) for circle in circles]}"


def test_a_circle_is_the_modules_on_it_and_no_module_it_merely_reaches() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in [("a.x", "a.y"), ("a.y", "a.z"), ("a.z", "a.x"), ("a.z", "a.w")]:
        graph.add_import(importer=importer, imported=imported)

    assert import_circles(graph) == {frozenset({"a.x", "a.y", "a.z"})}
