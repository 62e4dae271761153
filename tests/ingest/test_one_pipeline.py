"""Nothing outside the ingest pipeline writes vectors: read from the source with ``ast``.

An ``IndexWriter`` is constructed only by the pipeline and by the owners listed below
(with why), and the encoder's image encoding (``encode_batches``, ``encode_images``) is
called for ingest only by the pipeline's encode stage and Ray's actors, its other
executor.
"""

from __future__ import annotations

import ast
from pathlib import Path

import zeroshot_vision

PACKAGE = Path(zeroshot_vision.__file__).parent

WRITER_OWNERS = {
    "_engine.py": "the engine owns one writer for its lifetime and hands it to the pipeline",
    "_cli/duplicates.py": "moving duplicate files rewrites ids; nothing is ingested",
    "_index/writer.py": "the writer itself",
}
ENCODE_CALLERS = {
    "_encoder.py": "the encoder's own methods",
    "distributed/_actors.py": "Ray's actors: the other executor of the encode stage",
    "eval/_run.py": "evaluation embeds a benchmark's images; nothing is written",
    "server/_openai_routes.py": "the embeddings endpoint answers with vectors; nothing is written",
    "server/_search_routes.py": "classify scores the images sent; nothing is written",
    "server/_batching.py": "the server's request batcher, for the same endpoint",
    "integrations/langchain.py": "embed_image gives LangChain vectors; writes use index_images",
    "integrations/llama_index.py": "embed_image gives LlamaIndex vectors; writes use index_images",
}
ENCODE_METHODS = {"encode_batches", "encode_images"}


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def _called_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _calls(tree: ast.Module, names: set[str]) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and _called_name(node) in names
    ]


def test_only_the_pipeline_constructs_an_index_writer() -> None:
    found = {
        where: lines
        for where, tree in _modules()
        if (lines := _calls(tree, {"IndexWriter"}))
        and not where.startswith("ingest/")
        and where not in WRITER_OWNERS
    }
    assert found == {}, f"construct an IndexWriter only in zeroshot_vision.ingest: {found}"


def test_only_the_encode_stage_encodes_images_for_ingest() -> None:
    found = {
        where: lines
        for where, tree in _modules()
        if (lines := _calls(tree, ENCODE_METHODS))
        and where != "ingest/_encode.py"
        and where not in ENCODE_CALLERS
    }
    assert found == {}, f"encode images for ingest only in ingest/encode.py: {found}"


def test_the_check_sees_the_calls_it_allows() -> None:
    # The allow-lists name real callers: a check that could not fail would pass empty.
    modules = dict(_modules())
    assert _calls(modules["ingest/_encode.py"], ENCODE_METHODS)
    assert _calls(modules["ingest/_run.py"], {"IndexWriter"})
    for where in WRITER_OWNERS.keys() - {"_index/writer.py"}:
        assert _calls(modules[where], {"IndexWriter"}), where
    for where in ENCODE_CALLERS.keys() - {"_encoder.py"}:
        assert _calls(modules[where], ENCODE_METHODS), where
