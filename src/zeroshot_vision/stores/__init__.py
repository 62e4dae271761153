"""Vector stores: the protocol, the shared filter language, and the backends.

Backends import their heavy dependency (faiss, pinecone) only when constructed.
"""

from zeroshot_vision.stores.base import VectorStore
from zeroshot_vision.stores.faiss import FaissStore
from zeroshot_vision.stores.filters import matches, validate_filter

__all__ = ["FaissStore", "VectorStore", "matches", "validate_filter"]
