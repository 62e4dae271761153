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

Whatever goes wrong with one image, even a crashed decoder process, is that image's
:class:`~zeroshot_vision.errors.ImageLoadError`, never the batch's.
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sized
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt

from zeroshot_vision._checks import batched
from zeroshot_vision._pixels import (
    PixelSpec,
    apply_orientation,
    resize_many_on_device,
    resize_with_pil,
)
from zeroshot_vision.errors import ImageDecodeError, ImageLoadError
from zeroshot_vision.images import DEFAULT_MAX_PIXELS, _reason, describe_source, load_image

if TYPE_CHECKING:
    import torch

__all__ = [
    "DecoderPool",
    "FeedBatch",
    "JpegData",
    "PixelFeed",
    "default_workers",
    "device_decode_available",
]

logger = logging.getLogger(__name__)

MAX_WORKERS = 16
"""Most decoding processes started by default (16 kept an H100 fed in measurements)."""

_ORPHAN_CHECK_SECONDS = 0.2
_ORIENTATION_TAG = 0x0112
_DEVICE_JPEG_MODES = frozenset({"RGB", "L"})
_JPEG_SUFFIXES = (".jpg", ".jpeg", ".jfif")
_JPEG_MAGIC = b"\xff\xd8\xff"
# A JPEG file far larger than its raw pixels is not an ordinary photo: the CPU path reads
# it, from the open file, without loading it whole.
_JPEG_BYTES_PER_PIXEL = 4
_JPEG_SLACK_BYTES = 1 << 20


@dataclass(frozen=True)
class JpegData:
    """A checked JPEG, for the GPU decoder: its bytes and its EXIF orientation (1-8)."""

    data: bytearray
    orientation: int


Prepared: TypeAlias = npt.NDArray[np.uint8] | JpegData | ImageLoadError


def default_workers() -> int:
    """Decoding processes for this machine: one per core, at most :data:`MAX_WORKERS`."""
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


def device_decode_available(device: torch.device) -> bool:
    """Whether JPEGs can be decoded on ``device``: CUDA, with torchvision installed."""
    if device.type != "cuda":
        return False
    try:
        from torchvision.io import decode_jpeg  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken torchvision just means "no"
        return False
    return True


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
            found = _device_jpeg(source, max_pixels)
            if found is not None:
                return found
        image = load_image(source, max_pixels=max_pixels, draft_size=draft_size)
        return resize_with_pil(image, spec)
    except ImageLoadError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - one image must not end a whole run
        return ImageDecodeError(describe_source(source), _reason(exc))


def _looks_like_jpeg(source: Any) -> bool:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source[:3]) == _JPEG_MAGIC
    return Path(source).suffix.lower() in _JPEG_SUFFIXES


def _device_jpeg(source: Any, max_pixels: int | None) -> JpegData | None:
    """A JPEG the GPU can decode exactly as Pillow would, else None (the CPU path takes it).

    Checked here, on a reader thread, from one read of the header: an RGB or gray
    baseline/progressive JPEG (not CMYK, not a multi-picture file), within the pixel
    limit, of an ordinary size for its pixels (a file is read whole only then), and
    complete (ending in the EOI marker; a truncated file keeps the CPU path and its error).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytearray(source)
        if not data.startswith(_JPEG_MAGIC):
            return None
        orientation = _device_jpeg_header(io.BytesIO(data), max_pixels, file_size=None)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.suffix.lower() not in _JPEG_SUFFIXES or not path.is_file():
            return None
        with path.open("rb") as handle:
            if handle.read(3) != _JPEG_MAGIC:
                return None
            handle.seek(0)
            file_size = os.fstat(handle.fileno()).st_size
            orientation = _device_jpeg_header(handle, max_pixels, file_size=file_size)
            if orientation is None:
                return None
            handle.seek(0)
            data = bytearray(handle.read())
    else:
        return None
    if orientation is None or not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        return None
    return JpegData(data=data, orientation=orientation)


def _device_jpeg_header(
    stream: Any, max_pixels: int | None, *, file_size: int | None
) -> int | None:
    """The EXIF orientation (1-8) of a JPEG the GPU may decode, from its header; else None."""
    from PIL import Image

    with Image.open(stream) as image:
        width, height = image.size
        if (
            image.format != "JPEG"
            or image.mode not in _DEVICE_JPEG_MODES
            or width * height == 0
            or (max_pixels is not None and width * height > max_pixels)
            or (
                file_size is not None
                and file_size > _JPEG_BYTES_PER_PIXEL * width * height + _JPEG_SLACK_BYTES
            )
        ):
            return None
        try:
            orientation = int(image.getexif().get(_ORIENTATION_TAG, 1))
        except Exception:  # noqa: BLE001 - the CPU path logs and ignores broken EXIF
            return None
    return orientation if 1 <= orientation <= 8 else 1


@dataclass
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
        table: The spec's :meth:`~zeroshot_vision._pixels.PixelSpec.device_table` on
            ``device``, in the model's input dtype.
        pool: The encoder's :class:`DecoderPool`; ``None`` (and any input of at most
            one batch) decodes on a few threads of this process instead.
        device_decode: Decode JPEGs on the device (CUDA with torchvision).
        max_pixels: See :func:`~zeroshot_vision.images.load_image`.
        draft_size: See :func:`~zeroshot_vision.images.load_image`.
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
        while True:
            item = self._queue.get()
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
            on_device = jpeg and self._readers is not None and _looks_like_jpeg(source)
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
            decoded = self._decode_on_device([results[i] for i in jpegs])
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

    def _decode_on_device(self, jpegs: list[JpegData]) -> list[torch.Tensor | None]:
        """Model-size ``(H, W, 3)`` uint8 pixels of each JPEG, or None where nvJPEG fails."""
        from torchvision.io import (  # type: ignore[import-not-found, unused-ignore]
            ImageReadMode,
            decode_jpeg,
        )

        torch = self._torch
        datas = [torch.frombuffer(jpeg.data, dtype=torch.uint8) for jpeg in jpegs]
        try:
            decoded: list[Any] = decode_jpeg(datas, mode=ImageReadMode.RGB, device=self._device)
        except RuntimeError as exc:
            logger.debug("batch JPEG decode failed (%s); decoding one at a time", exc)
            decoded = []
            for data in datas:
                try:
                    decoded.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=self._device))
                except RuntimeError:
                    decoded.append(None)
        upright = [
            None if pixels is None else apply_orientation(pixels, jpeg.orientation)
            for jpeg, pixels in zip(jpegs, decoded)
        ]
        return resize_many_on_device(upright, self._spec)


class DecoderPool:
    """Decoding processes kept for an encoder's life, started at first use.

    Forking once, rather than for every call, keeps small calls cheap; a pool whose
    worker died (a decoder crash, the OOM killer) is replaced at the next use. Processes
    exist on Linux only (forked: nothing is re-imported, not even the caller's
    ``__main__``, which ``spawn`` needs and a script without a main guard breaks);
    elsewhere ``fork`` is unsafe (macOS) or missing (Windows), and images decode on
    threads.

    Args:
        workers: Processes to start; 0 means threads.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers if sys.platform.startswith("linux") else 0
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def executor(self) -> Executor:
        """The running pool, started (or replaced, when broken) now."""
        with self._lock:
            if self._pool is not None and _is_broken(self._pool):
                logger.warning("a decoding process died; starting new ones")
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            if self._pool is None:
                pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=multiprocessing.get_context("fork"),
                    initializer=_worker_setup,
                    initargs=(os.getpid(),),
                )
                pool.submit(int).result()  # with fork, every worker starts at the first submit
                self._pool = pool
            return self._pool

    def close(self) -> None:
        """Stop the processes (a later use starts new ones)."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None


def _worker_setup(parent: int) -> None:
    """In a decoding process: leave Ctrl-C to the parent, and never outlive it."""
    # Ctrl-C reaches the whole process group; the parent stops the pool itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def exit_when_orphaned() -> None:
        # A killed parent (SIGKILL, the OOM killer) must not leave its workers behind,
        # holding its pipes open. (Linux's PR_SET_PDEATHSIG follows the forking thread,
        # not the process, and would kill a pool started by a short-lived thread.)
        while os.getppid() == parent:
            time.sleep(_ORPHAN_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=exit_when_orphaned, name="zsv-orphan-check", daemon=True).start()


def _is_broken(executor: Executor) -> bool:
    # ProcessPoolExecutor's own flag (set once a worker died); there is no public one.
    return bool(getattr(executor, "_broken", False))
