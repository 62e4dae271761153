"""The public surface: cheap import, an honest __all__, one error root."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import zeroshot_vision
from zeroshot_vision import errors
from zeroshot_vision._optional import require


def test_import_does_not_load_heavy_dependencies() -> None:
    code = (
        "import sys, zeroshot_vision, zeroshot_vision.stores, zeroshot_vision.engine;"
        "heavy = [m for m in ('torch', 'transformers', 'faiss', 'pinecone', 'streamlit',"
        " 'pandas', 'pyarrow', 'pillow_heif', 'tqdm')"
        " if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""


def test_all_is_honest() -> None:
    for name in zeroshot_vision.__all__:
        assert hasattr(zeroshot_vision, name), name
    public = {
        name
        for name, value in vars(zeroshot_vision).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public <= set(zeroshot_vision.__all__), public - set(zeroshot_vision.__all__)
    for name in ("Encoder", "VectorStore", "FaissStore", "SearchEngine", "Hit"):
        assert name in zeroshot_vision.__all__


def test_error_tree() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.ZeroshotVisionError)
    assert issubclass(errors.InvalidInputError, ValueError)
    assert issubclass(errors.InvalidFilterError, ValueError)
    assert issubclass(errors.DimensionMismatchError, ValueError)
    assert issubclass(errors.ImageLoadError, ValueError)
    assert issubclass(errors.ModelLoadError, OSError)
    assert issubclass(errors.MissingDependencyError, ImportError)
    assert issubclass(errors.IndexNotFoundError, FileNotFoundError)
    assert issubclass(errors.DatasetNotFoundError, FileNotFoundError)
    assert issubclass(errors.PartialWriteError, errors.StoreError)


def test_missing_optional_dependency_names_the_extra() -> None:
    with pytest.raises(errors.MissingDependencyError) as info:
        require("surely_not_installed_pkg", extra="pinecone", purpose="PineconeStore")
    message = str(info.value)
    assert 'pip install "zeroshot-vision[pinecone]"' in message
    assert "PineconeStore" in message
    assert isinstance(info.value.__cause__, ImportError)


def test_partial_write_error_carries_ids() -> None:
    exc = errors.PartialWriteError("boom", written_ids=["a"], failed_ids=("b", "c"))
    assert exc.written_ids == ["a"] and exc.failed_ids == ["b", "c"]


def test_package_is_typed() -> None:
    from importlib import resources

    assert resources.files("zeroshot_vision").joinpath("py.typed").is_file()


def _public_modules() -> list[str]:
    import pkgutil

    names = []
    for info in pkgutil.walk_packages(zeroshot_vision.__path__, "zeroshot_vision."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", _public_modules())
def test_every_public_module_has_an_honest_all(name: str) -> None:
    """What a public module defines is either in its __all__ or named with an underscore."""
    import importlib

    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ names {item!r}, which does not exist"
    defined = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and getattr(value, "__module__", None) == name
    }
    assert defined <= set(exported), f"{name} defines {sorted(defined - set(exported))}"


def test_implementation_modules_are_private() -> None:
    modules = set(_public_modules())
    for gone in ("zeroshot_vision.pipeline", "zeroshot_vision.index_dir"):
        assert gone not in modules
    for private in ("_scan", "_sync", "_checks", "_files", "_optional"):
        assert f"zeroshot_vision.{private}" not in modules


def test_result_types_are_keyword_only() -> None:
    from zeroshot_vision import types

    for name in types.__all__:
        value = getattr(types, name)
        if inspect.isclass(value) and hasattr(value, "__dataclass_fields__"):
            with pytest.raises(TypeError):
                value(*["x"] * len(value.__dataclass_fields__))


def test_no_code_branches_on_a_concrete_store_outside_its_module() -> None:
    """Persistence and lifecycle go through the protocol, not isinstance checks (#6)."""
    import ast
    from pathlib import Path

    package = Path(zeroshot_vision.__file__).parent
    concrete = {"FaissStore": "stores/faiss.py", "PineconeStore": "stores/pinecone.py"}
    offenders = []
    for path in package.rglob("*.py"):
        relative = path.relative_to(package).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
                names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                names |= {n.attr for n in ast.walk(node.args[1]) if isinstance(n, ast.Attribute)}
                for name, home in concrete.items():
                    if name in names and relative != home:
                        offenders.append(f"{relative}:{node.lineno} isinstance(..., {name})")
    assert offenders == []
