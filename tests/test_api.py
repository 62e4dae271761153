"""The public surface: cheap import, an honest __all__, one error root."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
from tests.test_public_api import public_modules

import zeroshot_vision
from zeroshot_vision import _errors as errors
from zeroshot_vision._optional import require


def test_import_does_not_load_heavy_dependencies() -> None:
    code = (
        "import sys, zeroshot_vision, zeroshot_vision.stores, zeroshot_vision._engine,"
        " zeroshot_vision.distributed;"
        "heavy = [m for m in ('torch', 'transformers', 'faiss', 'pinecone', 'streamlit',"
        " 'pandas', 'pyarrow', 'pillow_heif', 'tqdm', 'ray')"
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


def test_implementation_modules_are_private() -> None:
    modules = public_modules()
    for gone in ("zeroshot_vision.pipeline", "zeroshot_vision.index_dir"):
        assert gone not in modules
    for private in ("_scan", "_sync", "_checks", "_files", "_optional"):
        assert f"zeroshot_vision.{private}" not in modules


@pytest.mark.parametrize("name", sorted(public_modules()))
def test_public_dataclasses_are_keyword_only(name: str) -> None:
    """Every dataclass a public module exports is built with keywords, never by position."""
    import dataclasses
    import importlib

    module = importlib.import_module(name)
    for item in getattr(module, "__all__", ()):
        value = getattr(module, item)
        if inspect.isclass(value) and dataclasses.is_dataclass(value):
            fields = [f for f in dataclasses.fields(value) if f.init]
            with pytest.raises(TypeError):
                value(*["x"] * max(len(fields), 1))


def test_keyword_only_check_catches_a_positional_dataclass() -> None:
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Positional:
        a: str

    Positional("x")  # what the test above would refuse


@pytest.mark.parametrize("old", ["IndexProgress", "DEFAULT_MODEL", "find_duplicates", "caption"])
def test_the_old_second_names_are_gone(old: str) -> None:
    # 0.1.0 was never released: the aliases kept "for one release" went with the public API.
    with pytest.raises(AttributeError, match=old):
        getattr(zeroshot_vision, old)


def test_index_writer_and_index_exchange_are_public() -> None:
    for name in ("IndexWriter", "export_index", "import_index"):
        assert name in zeroshot_vision.__all__
