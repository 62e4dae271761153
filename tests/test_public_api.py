"""The public surface is small, deliberate and documented.

Public means: a module whose dotted path has no component starting with ``_``. Each such
module lists its names in ``__all__``; docs/api.md documents every one of them; a new
public module or name fails here until it is added on purpose (to ``PUBLIC_MODULES`` and
to the page).
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

import zeroshot_vision

PACKAGE = Path(zeroshot_vision.__file__).parent
API_PAGE = Path(__file__).parents[1] / "docs" / "api.md"

PUBLIC_MODULES = {
    "zeroshot_vision",
    "zeroshot_vision.distributed",
    "zeroshot_vision.eval",
    "zeroshot_vision.ingest",
    "zeroshot_vision.integrations",
    "zeroshot_vision.integrations.hf_datasets",
    "zeroshot_vision.integrations.langchain",
    "zeroshot_vision.integrations.llama_index",
    "zeroshot_vision.server",
    "zeroshot_vision.stores",
    "zeroshot_vision.testing",
    "zeroshot_vision.unsplash",
}
MAX_MODULES = 15
MAX_NAMES = 200


def public_modules() -> set[str]:
    """Every module of the installed package whose path has no private component."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if not any(part.startswith("_") for part in parts):
            found.add(".".join(parts))
    return found


def documented_targets(page: str) -> set[str]:
    """The dotted names of ``::: target`` directives, with any ``members:`` they list."""
    targets: set[str] = set()
    for match in re.finditer(r"^::: (\S+)((?:\n {4}.*)*)", page, flags=re.MULTILINE):
        target, options = match.groups()
        members = re.search(r"members: \[([^\]]*)\]", options)
        if members:
            targets.update(f"{target}.{name.strip()}" for name in members.group(1).split(","))
        else:
            targets.add(target)
    return targets


def resolve(dotted: str) -> object:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_the_public_modules_are_the_ones_chosen() -> None:
    assert public_modules() == PUBLIC_MODULES, (
        "a module outside this list must have a private name (_name.py), or be added here "
        "and to docs/api.md on purpose"
    )
    assert len(PUBLIC_MODULES) <= MAX_MODULES


@pytest.mark.parametrize("name", sorted(PUBLIC_MODULES))
def test_each_public_module_says_what_it_exports(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    for attribute in exported:
        assert hasattr(module, attribute), f"{name}.__all__ names {attribute}, which is missing"
    # Nothing defined here in public that __all__ does not list.
    stray = {
        key
        for key, value in vars(module).items()
        if not key.startswith("_")
        and not inspect.ismodule(value)
        and getattr(value, "__module__", None) == name
        and key not in exported
    }
    assert not stray, f"{name} exposes names its __all__ does not list: {sorted(stray)}"


def test_the_public_names_fit_the_budget() -> None:
    total = sum(len(importlib.import_module(name).__all__) for name in PUBLIC_MODULES)
    assert total <= MAX_NAMES, f"{total} public names, budget {MAX_NAMES}"


def test_the_api_page_documents_every_public_name_and_nothing_else() -> None:
    targets = documented_targets(API_PAGE.read_text(encoding="utf-8"))
    assert targets, "docs/api.md has no ::: directives"
    documented = {}
    for target in targets:
        module = target.rpartition(".")[0]
        assert module in PUBLIC_MODULES, f"docs/api.md documents {target}, not a public name"
        assert target.rpartition(".")[2] in importlib.import_module(module).__all__, target
        documented[id(resolve(target))] = target
    missing = [
        f"{name}.{attribute}"
        for name in sorted(PUBLIC_MODULES)
        for attribute in importlib.import_module(name).__all__
        if attribute != "__version__"
        and id(getattr(importlib.import_module(name), attribute)) not in documented
    ]
    assert not missing, f"public names docs/api.md does not document: {missing}"


def test_the_check_finds_an_undocumented_name() -> None:
    # The page parser must see through options blocks, and an absent name must show.
    page = (
        "::: zeroshot_vision.SearchEngine\n\n"
        "::: zeroshot_vision\n    options:\n      members: [Encoder, Hit]\n"
    )
    assert documented_targets(page) == {
        "zeroshot_vision.SearchEngine",
        "zeroshot_vision.Encoder",
        "zeroshot_vision.Hit",
    }
    assert "zeroshot_vision.Query" not in documented_targets(page)


def test_docs_and_examples_import_only_public_modules() -> None:
    root = Path(__file__).parents[1]
    private = re.compile(r"^\s*(?:from|import) (zeroshot_vision(?:\.\w+)*\._\w+)", re.MULTILINE)
    found = {
        f"{path.relative_to(root)}: {match.group(1)}"
        for path in [
            root / "README.md",
            *(root / "docs").glob("*.md"),
            *(root / "examples").glob("*.py"),
        ]
        for match in private.finditer(path.read_text(encoding="utf-8"))
    }
    assert not found, f"user-facing code imports private modules: {sorted(found)}"


def test_the_root_exports_every_error() -> None:
    from zeroshot_vision import _errors

    assert set(_errors.__all__) <= set(zeroshot_vision.__all__)
