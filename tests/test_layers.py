"""The package's layering, as import-linter's contracts in pyproject.toml state it.

``make lint`` runs ``lint-imports``; these tests run the same contracts under pytest, and
check on a small package of their own that each kind of contract the project relies on
(ordered layers, independent front ends, no loops between sibling modules) does fail
when broken, so that a contract that silently checks nothing is caught too. Imports
under ``if TYPE_CHECKING:`` do not count (they never run); lazy imports inside functions
do. ``import zeroshot_vision`` staying cheap is tests/test_api.py's.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import zeroshot_vision

pytest.importorskip("importlinter", reason="import-linter is in the dev extra")
tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(zeroshot_vision.__file__).parent


def _lint_imports(config: Path, cwd: Path, *extra_paths: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports --config CONFIG`` in a fresh interpreter (no shared module state)."""
    path = ":".join(str(p) for p in extra_paths)
    code = (
        f"import sys; sys.path[:0] = {path!r}.split(':') if {path!r} else []; "
        "from importlinter.cli import lint_imports; "
        f"sys.exit(lint_imports(config_filename={str(config)!r}, no_cache=True, no_logo=True))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def test_the_package_keeps_its_contracts() -> None:
    result = _lint_imports(ROOT / "pyproject.toml", ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_contract_ignores_an_import() -> None:
    for contract in _contracts():
        assert not contract.get("ignore_imports"), contract["id"]


def test_every_module_of_the_package_has_a_layer() -> None:
    (layers,) = [c for c in _contracts() if c["type"] == "layers"]
    assert layers["exhaustive"] is True
    assert layers["containers"] == ["zeroshot_vision"]
    named = {
        name.strip().strip("()")
        for layer in layers["layers"]  # type: ignore[attr-defined]
        for name in layer.replace(":", "|").split("|")
    }
    children = {
        path.stem if path.is_file() else path.name
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()
    }
    assert children <= named, children - named


def _toy_package(root: Path, modules: dict[str, str]) -> None:
    for name, source in modules.items():
        path = root / "toy" / f"{name.replace('.', '/')}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    for folder in [root / "toy", *(p for p in (root / "toy").rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()


_TOY_CONFIG = """
[tool.importlinter]
root_package = "toy"
exclude_type_checking_imports = true

[[tool.importlinter.contracts]]
id = "layers"
name = "layers"
type = "layers"
containers = ["toy"]
exhaustive = true
layers = ["cli", "server : app", "engine", "core"]

[[tool.importlinter.contracts]]
id = "front-ends"
name = "front ends"
type = "independence"
modules = ["toy.server", "toy.app"]

[[tool.importlinter.contracts]]
id = "no-cycles"
name = "no cycles"
type = "acyclic_siblings"
ancestors = ["toy"]
depth = 10
"""

_SOUND = {
    "cli": "import toy.server\nimport toy.app\n",
    "server": "import toy.engine\n",
    "app": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import toy.server\n",
    "engine": "def lazy():\n    import toy.core\n",
    "core.a": "import toy.core.b\n",
    "core.b": "x = 1\n",
}


@pytest.mark.parametrize(
    ("change", "broken"),
    [
        ({}, None),
        ({"core.b": "def lazy():\n    import toy.engine\n"}, "layers"),  # a lazy import upwards
        ({"app": "import toy.server\n"}, "front ends"),
        ({"core.b": "import toy.core.a\n"}, "no cycles"),
        ({"extra": "x = 1\n"}, "layers"),  # a module with no layer
    ],
)
def test_each_kind_of_contract_fails_when_broken(
    tmp_path: Path, change: dict[str, str], broken: str | None
) -> None:
    _toy_package(tmp_path, {**_SOUND, **change})
    config = tmp_path / "pyproject.toml"
    config.write_text(_TOY_CONFIG, encoding="utf-8")
    result = _lint_imports(config, tmp_path, tmp_path)
    if broken is None:
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        assert result.returncode != 0
        assert f"{broken} BROKEN" in " ".join(result.stdout.split()), result.stdout
