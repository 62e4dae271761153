"""The package's layering: no import loops, and no import from a lower layer upwards.

Read from the source with ``ast``, imports inside functions included (a lazy import is
still a dependency); imports under ``if TYPE_CHECKING:`` are left out, since they never
run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import zeroshot_vision

PACKAGE = Path(zeroshot_vision.__file__).parent
ROOT = "zeroshot_vision"

# Front ends and facades, and the layers that must never import them.
HIGHER = ("engine", "cli", "app", "server", "integrations", "distributed")
LOWER = ("stores", "images", "index")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    found: list[ast.AST] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            found.append(child)
            stack.append(child)
    return found


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules that the module at ``path`` imports when it runs."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets.add(base)
            # "from zeroshot_vision.index import writer" imports the submodule writer.
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    return {target for target in targets if target in modules and target != name}


def _graph() -> dict[str, set[str]]:
    files = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(files)
    return {name: _imports(path, modules) for name, path in files.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_graph_is_read() -> None:
    graph = _graph()
    assert "zeroshot_vision.engine" in graph
    assert "zeroshot_vision.index.writer" in graph["zeroshot_vision.engine"]


def test_no_lower_layer_imports_a_higher_one() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if _layer(module) in LOWER
        for target in targets
        if _layer(target) in HIGHER
    )
    assert not wrong, wrong


def test_library_code_never_imports_the_testing_package() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if _layer(module) != "testing"
        for target in targets
        if _layer(target) == "testing"
    )
    assert not wrong, wrong


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
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
    return found


def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    # A package's __init__ re-exports its modules, and a module's own import of a sibling
    # runs that __init__ first: edges into a package's __init__ from inside the package are
    # how Python packages work, not a loop between layers.
    packages = {name for name in graph if (PACKAGE.parent / name.replace(".", "/")).is_dir()}
    return {
        module: {
            target
            for target in targets
            if not (target in packages and module.startswith(target + "."))
        }
        for module, targets in graph.items()
    }


def test_no_import_loops() -> None:
    graph = _without_package_inits(_graph())
    assert not _cycles(graph), _cycles(graph)


def test_the_cycle_finder_finds_a_loop() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
