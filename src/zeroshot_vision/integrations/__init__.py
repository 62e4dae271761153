"""Zeroshot-vision inside other frameworks: LangChain, LlamaIndex, Hugging Face datasets.

Each integration is a module of its own behind an extra, imported only when used:

* :mod:`zeroshot_vision.integrations.langchain` (extra ``langchain``): SigLIP
  ``Embeddings`` and a LangChain ``VectorStore`` over any zeroshot-vision store or
  search engine;
* :mod:`zeroshot_vision.integrations.llama_index` (extra ``llama-index``): a LlamaIndex
  vector store for ``ImageNode`` and ``TextNode`` and a multi-modal SigLIP embedding;
* :mod:`zeroshot_vision.integrations.hf_datasets` (extra ``datasets``): index a Hugging
  Face ``Dataset`` or streaming ``IterableDataset`` of images, and export a store as a
  ``Dataset``.

Importing this package imports none of them.
"""

from __future__ import annotations

__all__: list[str] = []
