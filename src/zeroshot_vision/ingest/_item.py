"""``Item``: one thing to index, whatever the source; and the one place its state row is built.

Every source (a folder tree, Unsplash Lite, a Hugging Face dataset, a Parquet export, a
list of paths or images, Ray's listed files) yields :class:`Item` values, and every stage
of the pipeline (plan, extract, encode, write) takes them. :func:`file_entry` is the only
code that turns an item into the :class:`~zeroshot_vision._index.folder.FileEntry` an index
folder's state records.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._index.folder import FileEntry

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from PIL import Image

    from zeroshot_vision._types import ImageSource

__all__ = ["Item", "file_entry"]


@dataclass(frozen=True, kw_only=True, eq=False)
class Item:
    """One image to index: its id, how to get its pixels, what it is known to be.

    A source may yield several items for one file (frames of a video: the file's id plus
    a timestamp); each has its own id and the file's ``display_path``, so that when the
    file goes, a folder run removes all of them.

    Attributes:
        id: The id its vector gets; stable across runs (a relative path, a photo id, a
            dataset row's id).
        path: Where the pixels are: a local file, or a URI (``s3://...``) for sources
            whose workers read them (Ray). ``None`` when ``data`` holds them.
        data: The pixels themselves when there is no file to read: bytes, a PIL image or
            a numpy array (what :meth:`SearchEngine.index_images` accepts).
        display_path: The file's path as text that can be stored and shown (see
            :func:`~zeroshot_vision._index.scan.displayable`); recorded in the index
            folder's state. ``None`` for images with no file.
        size: The file's size in bytes, part of its fingerprint (``None``: unknown).
        mtime_ns: The file's modification time, part of its fingerprint.
        metadata: What the source knows about it, stored with its vector. It wins over
            what extractors add under the same key.
        vector: A vector computed elsewhere (a Parquet export): the encode stage skips
            the item and writes this one.
        label: How reports name it, when not by ``display_path`` (a dataset row's id, or
            ``"<bytes>"``).
        stored_metadata: For an unchanged item whose tracked extractors run again (its
            stored vector reused): the metadata the store holds for it. It lies under
            what this run's extractors and source give, so a field of an extractor that
            does not run this time (a caption, OCR's line count) is kept, not dropped.
    """

    id: str
    path: Path | str | None = None
    data: ImageSource | None = None
    display_path: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    vector: npt.NDArray[np.float32] | None = None
    label: str | None = None
    stored_metadata: Mapping[str, Any] | None = None

    @property
    def fingerprint(self) -> tuple[str, int, int] | None:
        """``(display_path, size, mtime_ns)``: what tells an unchanged file, or ``None``."""
        if self.display_path is None or self.size is None or self.mtime_ns is None:
            return None
        return (self.display_path, self.size, self.mtime_ns)

    @property
    def name(self) -> str:
        """How reports and logs name the item: its label, else its path, else its id."""
        return self.label or self.display_path or self.id

    def pixels(self) -> ImageSource:
        """What the encoder reads: ``data`` when given, else ``path``.

        Raises:
            ValueError: The item has neither (a vector-only item from a Parquet export).
        """
        if self.data is not None:
            return self.data
        if self.path is not None:
            return self.path if isinstance(self.path, Path) else os.fspath(self.path)
        raise ValueError(f"item {self.id!r} has no pixels (neither path nor data)")

    def local_path(self) -> Path | None:
        """``path`` when it is a file on this machine (not a URI), else ``None``."""
        if self.path is None or (isinstance(self.path, str) and "://" in self.path):
            return None
        return Path(self.path)

    def image(self) -> Image.Image:
        """The decoded image, upright and RGB (for extractors that need pixels).

        Decodes on every call: an extractor that reads pixels twice should keep them.

        Raises:
            ImageLoadError: The pixels cannot be read or decoded.
        """
        from zeroshot_vision._images import load_image

        return load_image(self.pixels())


def file_entry(item: Item, *, failed: str | None = None) -> FileEntry:
    """The row an index folder's state records for ``item``: indexed, or failed with why.

    The one place a :class:`~zeroshot_vision._index.folder.FileEntry` is built from an
    image to index, so that every source records its items alike.
    """
    return FileEntry(
        id=item.id,
        path=item.display_path,
        size=item.size,
        mtime_ns=item.mtime_ns,
        status="failed" if failed is not None else "indexed",
        reason=failed,
    )
