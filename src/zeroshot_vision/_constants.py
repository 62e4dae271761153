"""Defaults, limits and file names that light front ends need without the heavy modules.

The command line builds its parser (``zsv --help``) and talks to a server without
importing numpy, pydantic or the stores; it reads these values from here, and the modules
that own them (:mod:`~zeroshot_vision._near_duplicates`,
:mod:`~zeroshot_vision._duplicate_moves`, :mod:`~zeroshot_vision.stores._filters`,
:mod:`~zeroshot_vision._index`) take them from here too, so each is written once. This
module imports nothing.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_DUPLICATE_THRESHOLD",
    "INDEX_MANIFEST",
    "KEEP_RULES",
    "MAX_FILTER_DEPTH",
]

DEFAULT_DUPLICATE_THRESHOLD = 0.99
"""Cosine at or above which two images count as near-duplicates (Immich: distance 0.01)."""

KEEP_RULES = ("largest", "newest", "oldest")
"""Which photo of a group of near-duplicates stays where it is."""

MAX_FILTER_DEPTH = 32
"""How deep ``$and``/``$or``/``$not`` may nest in a metadata filter."""

INDEX_MANIFEST = "settings.json"
"""The file that makes a folder an index folder (its manifest)."""
