"""Store kinds: how an index folder creates and reopens the store it records.

An index folder records its store as a kind name and a few JSON options (never secrets),
for example ``{"kind": "pinecone", "options": {"host": ..., "namespace": "photos"}}``.
To reopen it, the kind's *opener* is called with a :class:`StoreLocation`. Two kinds ship
built in, ``faiss`` and ``pinecone``; a third-party backend joins with
:func:`register_store_kind`, or from its own package through the
``zeroshot_vision.store_kinds`` entry-point group, and then ``zsv index --store NAME``
builds, saves and reopens indexes on it like on the built-in ones.

Example:
    >>> def open_my_store(location: StoreLocation) -> VectorStore:  # doctest: +SKIP
    ...     return MyStore(location.folder, dim=location.dim, **location.options)
    >>> register_store_kind("mystore", open_my_store)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._errors import IndexDamagedError, InvalidInputError, StoreError

if TYPE_CHECKING:
    from zeroshot_vision.stores._base import VectorStore

__all__ = [
    "ENTRY_POINT_GROUP",
    "OptionsCheck",
    "StoreLocation",
    "StoreOpener",
    "check_store_options",
    "open_store_kind",
    "register_store_kind",
    "store_kinds",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "zeroshot_vision.store_kinds"
"""Entry points in this group name a store kind and point at its opener."""

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_SECRET_WORDS = ("key", "secret", "token", "password")


@dataclass(frozen=True, kw_only=True)
class StoreLocation:
    """Where and what a store of an index folder is; what an opener receives.

    Attributes:
        folder: A folder inside the index folder reserved for this store's files (it may
            not exist yet); a remote store ignores it.
        dim: The vector dimension the index was created with.
        options: The kind's options recorded in the index folder.
        must_exist: True once the index has committed vectors: an embedded store whose
            files are then missing is damaged, not empty, and the opener must say so.
    """

    folder: Path
    dim: int
    options: Mapping[str, Any] = field(default_factory=dict)
    must_exist: bool = False


StoreOpener = Callable[[StoreLocation], "VectorStore"]
"""Opens (or creates, empty) the store at a location."""

OptionsCheck = Callable[[Mapping[str, Any]], None]
"""Raises :class:`~zeroshot_vision._errors.InvalidInputError` for options a kind cannot
use, before an index folder records them."""


def _open_faiss(location: StoreLocation) -> VectorStore:
    from zeroshot_vision.stores._faiss import MANIFEST, FaissStore

    if location.must_exist and not (location.folder / MANIFEST).is_file():
        raise IndexDamagedError(
            f"the vector store of this index is missing ({location.folder / MANIFEST} is "
            "gone) although vectors were committed; restore it from a backup, or delete the "
            "index folder and index again",
            path=str(location.folder / MANIFEST),
        )
    options = dict(location.options)
    if (location.folder / MANIFEST).is_file():
        # A saved store keeps the kind it was built or rebuilt as (zsv index
        # --rebuild-store): what the folder recorded at creation only sized a new one.
        for key in ("index", "ivfpq", "memory_budget", "capacity"):
            options.pop(key, None)
    try:
        return FaissStore.open(location.folder, dim=location.dim, **options)
    except IndexDamagedError:  # already names the file at fault
        raise
    except StoreError as exc:  # its files are part of the index folder: the folder is damaged
        raise IndexDamagedError(str(exc), path=str(location.folder)) from exc


def _open_pinecone(location: StoreLocation) -> VectorStore:
    from zeroshot_vision._optional import require

    module = require(
        "zeroshot_vision.stores._pinecone", extra="pinecone", purpose="the pinecone store"
    )
    options = location.options
    store: VectorStore = module.PineconeStore.connect(
        host=options.get("host"),
        index_name=options.get("index_name"),
        namespace=options.get("namespace") or "",
        dim=location.dim,
    )
    return store


def _check_faiss(options: Mapping[str, Any]) -> None:
    from zeroshot_vision.stores._faiss import INDEX_TYPES

    index = options.get("index", "flat")
    if index not in INDEX_TYPES:
        raise InvalidInputError(
            f"unknown faiss index type {index!r}; expected one of {', '.join(INDEX_TYPES)}"
        )


def _check_pinecone(options: Mapping[str, Any]) -> None:
    if options.get("host") and options.get("index_name"):
        raise InvalidInputError("name the Pinecone index by its host or its name, not both")


_KINDS: dict[str, StoreOpener] = {"faiss": _open_faiss, "pinecone": _open_pinecone}
_CHECKS: dict[str, OptionsCheck] = {"faiss": _check_faiss, "pinecone": _check_pinecone}
_entry_points_loaded = False


def register_store_kind(
    name: str,
    opener: StoreOpener,
    *,
    check_options: OptionsCheck | None = None,
    replace: bool = False,
) -> None:
    """Make a store kind available to index folders, ``SearchEngine.create`` and ``zsv``.

    Args:
        name: Lower-case letters, digits, ``-`` and ``_``; recorded in index folders.
        opener: Called with a :class:`StoreLocation`; returns the store, empty when
            nothing was committed yet.
        check_options: Called with the options of a new index before the folder records
            them; raises :class:`~zeroshot_vision._errors.InvalidInputError` for options
            the kind cannot use. (An entry point can give it as the opener's
            ``check_options`` attribute.)
        replace: Allow replacing an existing kind (built-in ones included).

    Raises:
        InvalidInputError: A malformed name, or a name taken without ``replace``.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(f"a store kind name must match {_NAME.pattern}, got {name!r}")
    if name in _KINDS and not replace and _KINDS[name] is not opener:
        raise InvalidInputError(f"store kind {name!r} is already registered")
    _KINDS[name] = opener
    check = check_options or getattr(opener, "check_options", None)
    if check is not None:
        _CHECKS[name] = check
    else:
        _CHECKS.pop(name, None)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in _KINDS:
            continue
        try:
            register_store_kind(point.name, point.load())
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the others
            logger.warning("cannot load store kind %r (%s): %s", point.name, point.value, exc)


def store_kinds() -> list[str]:
    """The names of every registered store kind, built-in ones first."""
    _load_entry_points()
    return list(_KINDS)


def check_store_options(kind: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Options fit to record in an index folder: JSON values, no secrets, no ``None``.

    Then the kind's own check, if it registered one.

    Raises:
        InvalidInputError: The kind is unknown, an option looks like a secret or is not
            a plain JSON value, or the kind refuses the options.
    """
    if kind not in store_kinds():
        raise InvalidInputError(
            f"unknown store kind {kind!r}; expected one of {', '.join(store_kinds())}"
        )
    clean: dict[str, Any] = {}
    for key, value in options.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"store option names must be strings, got {key!r}")
        if any(word in key.lower() for word in _SECRET_WORDS):
            raise InvalidInputError(
                f"store option {key!r} looks like a secret; secrets are never written to an "
                "index folder: pass them through the environment (e.g. PINECONE_API_KEY)"
            )
        if value is None:
            continue
        if not isinstance(value, (str, int, float, bool)):
            raise InvalidInputError(
                f"store option {key!r} must be a string, number or bool, got {value!r}"
            )
        clean[key] = value
    check = _CHECKS.get(kind)
    if check is not None:
        check(clean)
    return clean


def open_store_kind(kind: str, location: StoreLocation) -> VectorStore:
    """Open the store of ``kind`` at ``location``.

    Raises:
        InvalidInputError: No such kind is registered (install its package?).
        MissingDependencyError: The kind's optional package is not installed.
    """
    opener = _KINDS.get(kind)
    if opener is None:
        _load_entry_points()
        opener = _KINDS.get(kind)
    if opener is None:
        raise InvalidInputError(
            f"this index uses the store kind {kind!r}, which is not registered here "
            f"(known: {', '.join(store_kinds())}); install or register its backend"
        )
    return opener(location)
