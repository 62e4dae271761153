"""The encode stage: items to vectors with the local encoder, a batch at a time.

The encoder reads and decodes each item's pixels (:meth:`Item.pixels`) in its worker
processes ahead of the model; a bad image comes back as its
:class:`~zeroshot_vision._errors.ImageLoadError`, never raised. Items that carry a
vector already (a Parquet export, an unchanged image whose extractors re-run) are not
encoded. Ray Data is the other executor of this stage
(:func:`zeroshot_vision.distributed.index_with_ray`): actors run the same encoder.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, TypeAlias

from zeroshot_vision._checks import batched
from zeroshot_vision._errors import ImageLoadError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision._types import ImageSource
    from zeroshot_vision.ingest._item import Item

__all__ = ["Encoded", "encode"]

Encoded: TypeAlias = "list[tuple[Item, npt.NDArray[np.float32] | ImageLoadError]]"
"""One batch out of the encode stage: each item with its vector, or why it failed."""


def encode(items: Iterable[Item], encoder: Encoder | None, *, batch_size: int) -> Iterator[Encoded]:
    """Batches of ``(item, vector or ImageLoadError)``, in input order.

    Items with a ``vector`` pass through as they are; the others are encoded. A stream
    is one or the other (the pipeline keeps them apart); an item without a vector in a
    stream of vectors is encoded on its own.

    Raises:
        ValueError: Items need encoding but no encoder was given.
    """
    iterator = iter(items)
    first = next(iterator, None)
    if first is None:
        return
    stream = itertools.chain([first], iterator)
    if first.vector is not None:
        for chunk in batched(stream, batch_size):
            yield [(item, _vector(item, encoder)) for item in chunk]
        return
    if encoder is None:
        raise ValueError("items need encoding, but the run has no encoder")
    keys, pixels = itertools.tee(stream)
    # An item whose pixels cannot even be produced (a video frame that does not decode:
    # read where the feed asks for it) is that item's failure, never the run's: a
    # placeholder takes its place in the batch, and its error replaces its vector.
    failures: dict[int, ImageLoadError] = {}

    def sources() -> Iterator[ImageSource]:
        for item in pixels:
            try:
                yield item.pixels()
            except ImageLoadError as exc:
                failures[id(item)] = exc
                yield _placeholder()

    for batch in encoder.encode_batches(sources(), keys=keys, batch_size=batch_size):
        if failures:
            batch = [(item, failures.pop(id(item), vector)) for item, vector in batch]
        yield batch


def _placeholder() -> ImageSource:
    import numpy as np

    return np.zeros((8, 8, 3), dtype=np.uint8)


def _vector(item: Item, encoder: Encoder | None) -> npt.NDArray[np.float32] | ImageLoadError:
    if item.vector is not None:
        return item.vector
    if encoder is None:
        raise ValueError(f"item {item.id!r} needs encoding, but the run has no encoder")
    try:
        pixels = item.pixels()
    except ImageLoadError as exc:
        return exc
    ((_, vector),) = next(encoder.encode_batches([pixels], keys=[item], batch_size=1))
    return vector
