"""Feeding the model: pixel batches prepared ahead of it, off its thread, in input order.

A :class:`PixelFeed` turns a stream of image sources into batches of model-ready pixel
tensors on the model's device. Work is split so that the model never waits:

* **Worker processes** (forked, so nothing is re-imported; threads cannot scale, since
  resizing and Python-level decoding hold the GIL) read each file, decode it, turn it
  upright and resize it to the model's size, and send back ``uint8`` pixels (147 KB for
  384 x 384), never a full-size image. On a CUDA device with torchvision, JPEGs skip
  them: threads read each one and check it (header, pixel limit, orientation,
  completeness), and its bytes go to the GPU.
* **One feeder thread** gathers a batch in input order, decodes its JPEGs on the GPU in
  one nvJPEG call, resizes them there, copies the CPU-made pixels through pinned memory,
  and maps every pixel through the processor's own table: all on a side CUDA stream, so
  it overlaps the model running on the main one.
* A **bounded queue** (two batches) and a bounded number of batches being decoded keep
  memory flat whatever the number of images.

The processes are the encoder's :class:`~zeroshot_vision._images.pool.DecoderPool`; the
GPU's JPEG checks and decoding live in :mod:`zeroshot_vision._images.jpeg`.

Whatever goes wrong with one image, even a crashed decoder process, is that image's
:class:`~zeroshot_vision._errors.ImageLoadError`, never the batch's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sized
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt

from zeroshot_vision._checks import batched
from zeroshot_vision._errors import ImageDecodeError, ImageLoadError
from zeroshot_vision._images.jpeg import JpegData, decode_on_device, device_jpeg, looks_like_jpeg
from zeroshot_vision._images.loading import DEFAULT_MAX_PIXELS, _reason, describe_source, load_image
from zeroshot_vision._images.pixels import PixelSpec, resize_with_pil
from zeroshot_vision._images.pool import DecoderPool

if TYPE_CHECKING:
    import torch

__all__ = ["FeedBatch", "PixelFeed", "prepare"]

logger = logging.getLogger(__name__)


Prepared: TypeAlias = npt.NDArray[np.uint8] | JpegData | ImageLoadError
"""What a decoding process hands back for one source."""


def prepare(
    source: Any,
    spec: PixelSpec,
    *,
    jpeg_for_device: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
) -> Prepared:
    """One source to model-size pixels, a :class:`JpegData` for the GPU, or its error.

    Runs in a worker process (or thread); never raises.
    """
    try:
        if jpeg_for_device:
            found = device_jpeg(source, max_pixels)
            if found is not None:
                return found
        image = load_image(source, max_pixels=max_pixels, draft_size=draft_size)
        return resize_with_pil(image, spec)
    except ImageLoadError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - one image must not end a whole run
        return ImageDecodeError(describe_source(source), _reason(exc))


@dataclass(kw_only=True)
class FeedBatch:
    """One batch of a :class:`PixelFeed`.

    Attributes:
        keys: One key per image, in input order.
        errors: For each image, its error, or None when it is in ``pixels``.
        pixels: ``(n_good, 3, H, W)`` model input on the device, in the model's dtype.
        ready: A CUDA event to wait on before using ``pixels`` (None on the CPU).
    """

    keys: list[Any]
    errors: list[ImageLoadError | None]
    pixels: torch.Tensor | None
    ready: Any = None


_DONE = object()


class PixelFeed:
    """Model-ready pixel batches, prepared by worker processes and a feeder thread.

    Iterate it (once) from the thread that runs the model; close it (or use ``with``) to
    stop early. Keys default to the sources themselves.

    Args:
        sources: Image sources (paths, bytes, PIL images, arrays); read lazily.
        keys: One key per source, handed back with it.
        spec: The processor's :class:`PixelSpec`.
        batch_size: Images per batch.
        device: The model's device.
        table: The spec's :meth:`~zeroshot_vision._images.pixels.PixelSpec.device_table` on
            ``device``, in the model's input dtype.
        pool: The encoder's :class:`DecoderPool`; ``None`` (and any input of at most
            one batch) decodes on a few threads of this process instead.
        device_decode: Decode JPEGs on the device (CUDA with torchvision).
        max_pixels: See :func:`~zeroshot_vision._images.load_image`.
        draft_size: See :func:`~zeroshot_vision._images.load_image`.
        ahead: Batches decoded ahead of the one being assembled.
    """

    def __init__(
        self,
        sources: Iterable[Any],
        keys: Iterable[Any] | None,
        *,
        spec: PixelSpec,
        batch_size: int,
        device: torch.device,
        table: torch.Tensor,
        pool: DecoderPool | None,
        device_decode: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        draft_size: tuple[int, int] | None = None,
        ahead: int = 2,
    ) -> None:
        import torch

        self._torch = torch
        self._spec = spec
        self._device = device
        self._device_decode = device_decode
        self._max_pixels = max_pixels
        self._draft_size = draft_size
        self._ahead = max(1, ahead)
        self._table = table
        self._stream = (
            torch.cuda.Stream(device)  # type: ignore[no-untyped-call, unused-ignore]
            if device.type == "cuda"
            else None
        )
        small = isinstance(sources, Sized) and len(sources) <= batch_size
        self._pool = None if small or pool is None or not pool.workers else pool
        if self._pool is not None:
            self._pool.executor()  # forked here, from the caller's thread, not the feeder's
        self._threads = (
            ThreadPoolExecutor(max_workers=4, thread_name_prefix="zsv-decode")
            if self._pool is None
            else None
        )
        self._readers = (
            ThreadPoolExecutor(max_workers=8, thread_name_prefix="zsv-read")
            if device_decode
            else None
        )
        pairs = zip(keys, sources) if keys is not None else ((s, s) for s in sources)
        self._chunks: Iterator[list[tuple[Any, Any]]] = batched(pairs, batch_size)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zsv-feed", daemon=True)
        self._thread.start()

    def __enter__(self) -> PixelFeed:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[FeedBatch]:
        while not self._stop.is_set():  # closed, perhaps from another thread: stop here
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop preparing batches and release the workers."""
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):  # unblock a feeder waiting to put
                self._queue.get(timeout=0.05)
        for threads in (self._threads, self._readers):
            if threads is not None:
                threads.shutdown(wait=True, cancel_futures=True)

    # -- the feeder thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._stream is not None:
                with self._torch.cuda.stream(self._stream):
                    self._produce()
            else:
                self._produce()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, who raises it
            self._put(exc)
        else:
            self._put(_DONE)

    def _produce(self) -> None:
        pending: deque[tuple[list[tuple[Any, Any]], list[Future[Prepared]]]] = deque()
        for chunk in self._chunks:
            if self._stop.is_set():
                return
            pending.append((chunk, [self._submit(source) for _, source in chunk]))
            if len(pending) > self._ahead and not self._put(self._assemble(*pending.popleft())):
                return
        while pending:
            if not self._put(self._assemble(*pending.popleft())):
                return

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _submit(self, source: Any, *, for_device: bool | None = None) -> Future[Prepared]:
        jpeg = self._device_decode if for_device is None else for_device
        if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
            if isinstance(source, memoryview):
                source = bytes(source)
            # A JPEG for the GPU is only read and checked: threads do that (the reads
            # release the GIL), and its bytes need no trip through a process pipe.
            on_device = jpeg and self._readers is not None and looks_like_jpeg(source)
            executor = self._readers if on_device and self._readers else self._executor()
            return executor.submit(
                prepare,
                source,
                self._spec,
                jpeg_for_device=on_device,
                max_pixels=self._max_pixels,
                draft_size=self._draft_size,
            )
        # Decoded images (PIL, numpy) are resized here: sending them to a process costs
        # more than the resize.
        done: Future[Prepared] = Future()
        done.set_result(
            prepare(source, self._spec, max_pixels=self._max_pixels, draft_size=self._draft_size)
        )
        return done

    def _results(self, chunk: list[tuple[Any, Any]], futures: list[Future[Prepared]]) -> list[Any]:
        results: list[Any] = []
        lost = []
        for i, future in enumerate(futures):
            try:
                results.append(future.result())
            except BrokenProcessPool:
                results.append(None)
                lost.append(i)
        for i in lost:
            results[i] = self._solo(chunk[i][1])
        return results

    def _solo(self, source: Any) -> Prepared:
        """Decode one source alone on healthy workers, so a crash is pinned on its image."""
        try:
            job = self._executor().submit(
                prepare,
                source,
                self._spec,
                max_pixels=self._max_pixels,
                draft_size=self._draft_size,
            )
            return job.result()
        except BrokenProcessPool:
            return ImageDecodeError(describe_source(source), "the decoder process crashed on it")

    def _executor(self) -> Executor:
        if self._threads is not None:
            return self._threads
        assert self._pool is not None
        return self._pool.executor()

    def _assemble(self, chunk: list[tuple[Any, Any]], futures: list[Future[Prepared]]) -> FeedBatch:
        torch = self._torch
        results = self._results(chunk, futures)
        jpegs = [i for i, result in enumerate(results) if isinstance(result, JpegData)]
        on_device: dict[int, Any] = {}
        if jpegs:
            decoded = decode_on_device([results[i] for i in jpegs], self._spec, self._device)
            for i, pixels in zip(jpegs, decoded):
                if pixels is None:  # the GPU decoder refused it: the CPU path decides
                    retry = self._submit(chunk[i][1], for_device=False)
                    results[i] = self._results([chunk[i]], [retry])[0]
                else:
                    on_device[i] = pixels
        errors = [result if isinstance(result, ImageLoadError) else None for result in results]
        good = [i for i, error in enumerate(errors) if error is None]
        keys = [key for key, _ in chunk]
        if not good:
            return FeedBatch(keys=keys, errors=errors, pixels=None)
        spec = self._spec
        batch = torch.empty(
            (len(good), spec.height, spec.width, 3), dtype=torch.uint8, device=self._device
        )
        host = [(row, results[i]) for row, i in enumerate(good) if i not in on_device]
        if host:
            stacked = torch.from_numpy(np.stack([array for _, array in host]))
            if self._device.type == "cuda":
                stacked = stacked.pin_memory()
            rows = torch.tensor([row for row, _ in host], device=self._device)
            batch.index_copy_(0, rows, stacked.to(self._device, non_blocking=True))
        for row, i in enumerate(good):
            if i in on_device:
                batch[row] = on_device[i]
        pixels = spec.to_model_input(batch, self._table)
        ready = None
        if self._stream is not None:
            ready = torch.cuda.Event()
            ready.record(self._stream)
        return FeedBatch(keys=keys, errors=errors, pixels=pixels, ready=ready)
