"""The layers of docs/architecture.md, enforced: no upward import, no cycle, a light core.

Every module under ``temzoo/`` is parsed with ``ast``; nothing is imported, and imports
inside functions count as much as those at the top of a module. The layer table is read
from ``docs/architecture.md``, so the page and this test cannot disagree.
"""

import ast
import pathlib
import re
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO / "temzoo"
DOC = REPO / "docs" / "architecture.md"

# Edges allowed although they break the rules: none since issue 16's merge. Any edge added here
# needs a comment saying who removes it; the test fails when a listed edge no longer exists.
KNOWN_EDGES = set()
INFERENCE_PATH = ("inference.tiling", "inference.tile_layout", "io", "inference.formats", "inference.predict_files",
                  "receptive_field", "inference.precision", "zoo.resolve", "zoo.pretrained")
PRIVATE_KERAS_GRAPH = {"_nodes_by_depth", "_functional", "_keras_history", "_inbound_nodes", "_outbound_nodes"}
GRAPH_MODULE = "temzoo.models.graph"


# ----------------------------------------------------------------------------- reading the tree
def _modules():
    """Dotted module name -> path, for every ``.py`` file under ``temzoo/`` (packages by their ``__init__``)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(), filename=str(path)) for name, path in MODULES.items()}


def _imported_names(name, tree, top_level_only=False):
    """Absolute dotted names ``name`` imports (``from a import b`` gives ``a.b``), with the node's line."""
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                yield (f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base), node.lineno


def _module_of(dotted):
    """The module a dotted import name lands in (``temzoo.io.read_image`` -> ``temzoo.io``), or None."""
    while dotted and dotted not in MODULES:
        dotted = dotted.rpartition(".")[0]
    return dotted or None


def _edges():
    """Module -> {imported temzoo modules}. Importing ``temzoo.a.b`` from outside ``temzoo.a``
    also imports the package ``temzoo.a`` (Python runs its ``__init__``); the root package
    counts only when it is imported itself."""
    edges = {}
    for name, tree in TREES.items():
        targets = set()
        for dotted, _ in _imported_names(name, tree):
            if dotted.split(".")[0] != "temzoo":
                continue
            target = _module_of(dotted)
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                parent = ".".join(parts[:i])
                inside = name == parent or name.startswith(parent + ".")
                if parent in MODULES and (parent == target or not inside) and parent != name:
                    targets.add(parent)
            if target == "temzoo" and name != "temzoo":
                targets.add("temzoo")
        edges[name] = targets
    return edges


EDGES = _edges()


def _layers():
    """Layer names, lowest first, and entry (``models``, ``tiling``) -> layer, from docs/architecture.md."""
    text = DOC.read_text()
    match = re.search(r"<!-- layers:begin.*?-->(.*?)<!-- layers:end -->", text, re.S)
    assert match, f"{DOC}: the layer table (between <!-- layers:begin --> and <!-- layers:end -->) is missing"
    order, entries = [], {}
    for line in match.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[0] in ("Layer", "") or set(cells[0]) <= set("-"):
            continue
        order.append(cells[0])
        for entry in re.findall(r"`([^`]+)`", cells[1]):
            assert entry not in entries, f"{DOC}: {entry!r} is in two layers"
            entries[entry] = cells[0]
    return order, entries


ORDER, ENTRIES = _layers()


def layer_of(module):
    """The layer of a ``temzoo`` module: the table entry that is the longest prefix of its name."""
    short = module[len("temzoo."):]
    for cut in range(short.count(".") + 1, 0, -1):
        entry = ".".join(short.split(".")[:cut])
        if entry in ENTRIES:
            return ENTRIES[entry]
    return None


def _closure(start, edges):
    seen, stack = set(), [start]
    while stack:
        for target in edges.get(stack.pop(), ()):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _without_known(edges):
    return {m: {t for t in targets if (m, t) not in KNOWN_EDGES} for m, targets in edges.items()}


# ----------------------------------------------------------------------------- the rules
def test_every_module_is_in_exactly_one_layer_of_the_table():
    assert ORDER[:2] == ["core", "models"], ORDER
    missing = [m for m in MODULES if m != "temzoo" and layer_of(m) is None]
    assert not missing, (
        f"modules in no layer of {DOC.relative_to(REPO)}: {missing}; add each to the row of the layer it belongs to"
    )
    stale = [e for e in ENTRIES if f"temzoo.{e}" not in MODULES]
    assert not stale, f"{DOC.relative_to(REPO)} names modules that do not exist: {stale}"


def test_no_module_imports_a_higher_layer_the_facade_or_the_cli():
    wrong = []
    for module, tree in TREES.items():
        if module == "temzoo":
            continue
        rank = ORDER.index(layer_of(module))
        for target in EDGES[module]:
            if (module, target) in KNOWN_EDGES:
                continue
            if target == "temzoo":
                wrong.append(f"{module} imports the package facade temzoo (import the module itself)")
            elif ORDER.index(layer_of(target)) > rank:
                wrong.append(f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})")
        for dotted, line in _imported_names(module, tree):
            if dotted.split(".")[0] in ("cli", "temzoo_cli"):
                wrong.append(f"{module}:{line} imports the command line ({dotted})")
    assert not wrong, "imports against docs/architecture.md:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle_between_modules():
    edges = _without_known(EDGES)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(edges)))
    try:
        for module in edges:
            if module not in index:
                visit(module)
    finally:
        sys.setrecursionlimit(limit)
    described = [
        ", ".join(f"{m} -> {sorted(t for t in edges[m] if t in cycle)}" for m in cycle) for cycle in cycles
    ]
    assert not cycles, "import cycles:\n" + "\n".join(described)


def test_the_known_edges_still_exist():
    """Each entry of KNOWN_EDGES is a real import today; once the work removes it, delete it."""
    gone = sorted(edge for edge in KNOWN_EDGES if edge[1] not in EDGES.get(edge[0], ()))
    assert not gone, f"remove these from KNOWN_EDGES in {__file__}: {gone}"


@pytest.mark.parametrize("entry", INFERENCE_PATH)
def test_the_inference_path_loads_no_data_training_or_analysis_module(entry):
    reached = _closure(f"temzoo.{entry}", _without_known(EDGES))
    allowed = set(ORDER[: ORDER.index("inference") + 1])
    above = sorted(m for m in reached if m != "temzoo" and layer_of(m) not in allowed)
    assert not above, f"temzoo.{entry} imports, directly or through other modules: {above}"


def test_the_model_layer_imports_only_itself_and_core():
    for module in (m for m in MODULES if layer_of(m) == "models"):
        reached = _closure(module, EDGES)
        assert {layer_of(m) for m in reached} <= {"core", "models"}, (module, sorted(reached))


def test_names_imports_only_the_standard_library_and_core_only_it_and_core_at_the_top():
    modules = {dotted.split(".")[0] for dotted, _ in _imported_names("temzoo.names", TREES["temzoo.names"])}
    assert modules <= set(sys.stdlib_module_names), sorted(modules - set(sys.stdlib_module_names))
    for module in (m for m in MODULES if layer_of(m) == "core"):
        for dotted, line in _imported_names(module, TREES[module], top_level_only=True):
            if dotted.split(".")[0] == "temzoo":
                assert layer_of(_module_of(dotted)) == "core", f"{module}:{line} imports {dotted}"
            else:
                assert dotted.split(".")[0] in sys.stdlib_module_names, f"{module}:{line} imports {dotted}"


def test_private_keras_graph_attributes_are_read_in_models_graph_only():
    readers = sorted(
        f"{module}:{node.lineno} .{node.attr}"
        for module, tree in TREES.items()
        if module != GRAPH_MODULE
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_KERAS_GRAPH
    ) + sorted(
        f"{module}:{node.lineno} getattr(..., {node.args[1].value!r})"
        for module, tree in TREES.items()
        if module != GRAPH_MODULE
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr")
        and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and node.args[1].value in PRIVATE_KERAS_GRAPH
    )
    assert not readers, f"read these through {GRAPH_MODULE} (which fails loudly on a Keras upgrade): {readers}"


def test_the_checks_see_imports_inside_functions_and_catch_a_planted_leak():
    """The parser counts function-level imports, and an upward import in a model module would be caught."""
    assert "temzoo.zoo.pretrained" in EDGES["temzoo.inference.tiling"]  # imported inside predict's helpers only
    tree = ast.parse("def f():\n    from temzoo.tasks.backbone import resolve_model\n")
    planted = {t for dotted, _ in _imported_names("temzoo.models.unet", tree) if (t := _module_of(dotted))}
    assert {layer_of(t) for t in planted} == {"training"}
