"""No autokey module imports itself through others: a circle makes import order matter and
hides which module is the lower one. Imports inside functions and under TYPE_CHECKING count."""

from __future__ import annotations

import grimp

KNOWN_CIRCLES = {
    # Each merchant repository builds on its store module's helpers, and the store module
    # builds the merchant repository. Issue 13 §1 reshapes these modules; remove the entries
    # as the circles go.
    frozenset({"autokey.adapters.memory.store", "autokey.adapters.memory.merchant"}),
    frozenset({"autokey.adapters.sqlite.store", "autokey.adapters.sqlite.merchant"}),
}


def import_circles(graph: grimp.ImportGraph) -> set[frozenset[str]]:
    """Each set of modules that import one another, directly or through others."""
    return {
        frozenset({module, *circle})
        for module in graph.modules
        if (circle := graph.find_upstream_modules(module) & graph.find_downstream_modules(module))
    }


def test_no_autokey_module_imports_itself_through_others() -> None:
    circles = import_circles(grimp.build_graph("autokey", cache_dir=None))

    new = [sorted(circle) for circle in circles - KNOWN_CIRCLES]
    assert not new, f"import circles: {new}"
    gone = [sorted(circle) for circle in KNOWN_CIRCLES - circles]
    assert not gone, f"these circles are broken now, remove them from KNOWN_CIRCLES: {gone}"


def test_a_circle_is_the_modules_on_it_and_no_module_it_merely_reaches() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in [("a.x", "a.y"), ("a.y", "a.z"), ("a.z", "a.x"), ("a.z", "a.w")]:
        graph.add_import(importer=importer, imported=imported)

    assert import_circles(graph) == {frozenset({"a.x", "a.y", "a.z"})}
