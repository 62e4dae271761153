"""Vector stores: the protocol, the shared filter language, and the backends.

Backends import their heavy dependency (faiss, pinecone) only when constructed.
"""

from zeroshot_vision.stores._base import VectorStore
from zeroshot_vision.stores._batch import query_many
from zeroshot_vision.stores._faiss import FaissStore
from zeroshot_vision.stores._faiss_budget import IndexPlan, plan_index
from zeroshot_vision.stores._faiss_disk import IvfPqSettings
from zeroshot_vision.stores._faiss_rebuild import rebuild_store
from zeroshot_vision.stores._filters import matches, validate_filter
from zeroshot_vision.stores._parquet import export_store, import_store
from zeroshot_vision.stores._pinecone import PineconeStore, create_pinecone_index
from zeroshot_vision.stores._registry import StoreLocation, register_store_kind, store_kinds
from zeroshot_vision.stores._transfer import copy_store

__all__ = [
    "FaissStore",
    "IndexPlan",
    "IvfPqSettings",
    "PineconeStore",
    "StoreLocation",
    "VectorStore",
    "copy_store",
    "create_pinecone_index",
    "export_store",
    "import_store",
    "matches",
    "plan_index",
    "query_many",
    "rebuild_store",
    "register_store_kind",
    "store_kinds",
    "validate_filter",
]
