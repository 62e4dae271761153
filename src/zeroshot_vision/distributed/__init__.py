"""Distributed indexing on Ray Data: many GPUs or machines, into Parquet shards or Pinecone.

:func:`index_with_ray` runs Ray Data's batch-inference pattern over a collection: the
driver lists it, Ray tasks decode images on every node's CPUs, a pool of actors
(:class:`~zeroshot_vision.distributed._actors.EncodeChunks`, one model and one GPU each)
encodes them, and the vectors go to Parquet shards in the ``zsv export`` format, imported
into the index folder as they come, or straight to Pinecone. The result is the index
``zsv index`` makes, resumable by either. Needs the ``ray`` extra
(``pip install "zeroshot-vision[ray]"``); ``zsv index SOURCE --index DIR --ray`` runs it.

* :mod:`~zeroshot_vision.distributed._pipeline`: the driver and its stages;
* :mod:`~zeroshot_vision.distributed._sources`: listing and chunks with stable names;
* :mod:`~zeroshot_vision.distributed._stages`: decoding in Ray tasks;
* :mod:`~zeroshot_vision.distributed._actors`: the encoder actor class;
* :mod:`~zeroshot_vision.distributed._sinks`: Parquet shards and remote stores;
* :mod:`~zeroshot_vision.distributed._cluster`: connecting to Ray safely.

Importing this package does not import Ray.
"""

from zeroshot_vision.distributed._pipeline import index_with_ray

__all__ = ["index_with_ray"]
