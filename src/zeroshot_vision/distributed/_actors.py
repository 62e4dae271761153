"""The GPU (or CPU) stage of a distributed run: an actor class that holds one encoder.

Ray Data's batch-inference pattern: ``Dataset.map_batches(EncodeChunks, compute=
ActorPoolStrategy(...), num_gpus=1)`` starts a pool of actors, each of which loads the
model once in :meth:`EncodeChunks.__init__` and then encodes chunk after chunk. The
class lives in the package so that every worker imports it by name. Each chunk's
vectors go to the sink from the actor itself (a Parquet shard, or a remote store), so
only small results travel back to the driver.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from zeroshot_vision._errors import BatchTooLargeError, ImageLoadError
from zeroshot_vision.distributed._sinks import ShardSink, StoreSink

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["EncodeChunks", "out_of_memory", "too_large"]

logger = logging.getLogger(__name__)

_OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory")


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says an allocation failed (host memory, or a GPU's)."""
    if isinstance(exc, MemoryError):
        return True
    if type(exc).__name__ == "OutOfMemoryError":  # torch's, CUDA's caching allocator
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MARKERS)


def too_large(batch_size: int, cause: object) -> BatchTooLargeError:
    """The error for a batch that did not fit, naming the batch size to lower."""
    smaller = max(1, batch_size // 2)
    return BatchTooLargeError(
        f"a batch of {batch_size} images did not fit in a worker's memory ({cause}); "
        f"lower the batch size (--batch-size {smaller}, batch_size={smaller})",
        batch_size=batch_size,
    )


class EncodeChunks:
    """Encodes chunks of decoded images with one model, and writes them to a sink.

    Built by Ray Data once per actor, with the keyword arguments the driver gives.

    Args:
        model: The checkpoint (a hub id or a folder every node can read).
        device: ``"cuda"`` when the actor holds a GPU, else ``"cpu"``.
        dtype: The model's precision (``None``: the encoder's default for the device).
        batch_size: Images per chunk, for the encoder and for error messages.
        sink: Where the vectors go.
    """

    def __init__(
        self,
        *,
        model: str,
        device: str,
        dtype: str | None,
        batch_size: int,
        sink: ShardSink | StoreSink,
    ) -> None:
        from zeroshot_vision._encoder import Encoder

        # Decoding happened in the Ray tasks; the actor's own decoders would compete for
        # the CPUs Ray gave it. Threads serve the processor path of CLIP-like models.
        self.encoder = Encoder.from_pretrained(
            model, device=device, dtype=dtype, batch_size=batch_size, workers=0, warm_up=False
        )
        self.batch_size = batch_size
        self.sink = sink
        self.store = sink.open() if isinstance(sink, StoreSink) else None
        logger.info("encoder actor %d ready: %r", os.getpid(), self.encoder)

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[Any]]:
        """Encode each chunk row of ``batch``; one result row per chunk."""
        out: dict[str, list[Any]] = {"shard": [], "indexed": [], "failed": [], "reasons": []}
        for i in range(len(batch["shard"])):
            row = {key: batch[key][i] for key in batch}
            indexed, failed = self._chunk(row)
            out["shard"].append(str(row["shard"]))
            out["indexed"].append(indexed)
            out["failed"].append([item for item, _ in failed])
            out["reasons"].append([reason for _, reason in failed])
        return out

    def _chunk(self, row: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, str]]]:
        ids = [str(item) for item in row["ids"]]
        if bool(row["done"]):
            return [], []  # written by an earlier run: the driver imports the shard
        errors = [str(error) for error in row["errors"]]
        good = [i for i, error in enumerate(errors) if not error]
        vectors, failed_at = self._encode(row, good)
        failures = [(ids[i], errors[i]) for i in range(len(ids)) if errors[i]]
        failures += [(ids[i], reason) for i, reason in failed_at.items()]
        kept = [i for i in good if i not in failed_at]
        metadata = [json.loads(str(row["metadata"][i])) for i in kept]
        kept_ids = [ids[i] for i in kept]
        if self.store is not None:
            if kept_ids:
                self.store.upsert(kept_ids, vectors, metadata)
                self.store.commit()
        else:
            assert isinstance(self.sink, ShardSink)
            self.sink.write(str(row["shard"]), kept_ids, vectors, metadata, failures)
        return kept_ids, failures

    def _encode(
        self, row: Mapping[str, Any], good: list[int]
    ) -> tuple[npt.NDArray[np.float32], dict[int, str]]:
        """Vectors of the images at ``good``, and reasons for any the model's path refused."""
        from PIL import Image

        if not good:
            return np.zeros((0, self.encoder.dim), np.float32), {}
        try:
            if len(row["data"]) == 0:
                pixels = np.asarray(row["pixels"])
                images = [Image.fromarray(pixels[i]) for i in good]
                # Already at model size: the encoder's resize is a copy, and the batch is
                # the one zsv index encodes, so the vectors are the same.
                return self.encoder.encode_loaded(images), {}
            blobs = [bytes(row["data"][i]) for i in good]
            vectors: list[npt.NDArray[np.float32]] = []
            refused: dict[int, str] = {}
            for chunk in self.encoder.encode_batches(blobs, keys=good, batch_size=len(good)):
                for i, vector in chunk:
                    if isinstance(vector, ImageLoadError):
                        refused[i] = vector.reason
                    else:
                        vectors.append(vector)
            if not vectors:
                return np.zeros((0, self.encoder.dim), np.float32), refused
            return np.stack(vectors), refused
        except Exception as exc:
            if out_of_memory(exc):
                raise too_large(self.batch_size, exc) from exc
            raise

    def __del__(self) -> None:
        # Actors end with the job; the encoder's threads and the store's connections
        # go with them.
        try:
            self.encoder.close()
            if self.store is not None:
                self.store.close()
        except Exception:  # noqa: BLE001 - at exit nothing can be done
            pass
