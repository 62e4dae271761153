"""The ``"ivfpq"`` kind of :class:`~zeroshot_vision.stores._faiss.FaissStore`: compressed
codes in RAM, the vectors on disk, exact re-ranking.

Two parts, each with one job:

* :class:`DiskVectors` keeps every vector as float16, one row per FAISS key, in a file
  that is memory-mapped for reading (``vectors-<gen>.f16``). Keys are never reused by this
  kind, so the file only grows by appending: rows below the committed ``next_key`` are
  never rewritten, and a writer killed mid-append leaves the committed rows as they were.
  Rows not yet flushed wait in RAM (at most :data:`SPILL_ROWS` when the file is known).
* :class:`IvfPqIndex` is the search structure: an inverted file (IVF; its coarse
  quantizer an HNSW graph once there are :data:`HNSW_QUANTIZER_LISTS` lists or more) of
  product-quantized codes (PQ, ``code_bytes`` bytes per vector), trained on a sample of
  the first :attr:`IvfPqSettings.train_size` vectors. A query scans ``nprobe`` lists for
  ``rerank x k`` candidates by their approximate scores, then scores those candidates
  exactly against their float16 vectors: the scores returned are the true cosines (to
  float16 rounding, about 5e-4), and so are the probabilities calibrated from them.
  Until it is trained, it searches exactly (flat) over the float16 vectors.

It offers the few methods of a FAISS index that ``FaissStore`` calls (``add_with_ids``,
``remove_ids``, ``reconstruct``, ``reconstruct_batch``, ``ntotal``, ``d``) plus its own
``search_keys`` (queries with an optional list of allowed keys), so the store's
bookkeeping of ids, metadata, filters, deltas and manifests stays one piece of code.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from zeroshot_vision._errors import IndexDamagedError, InvalidInputError
from zeroshot_vision._optional import require

if TYPE_CHECKING:
    from types import ModuleType

logger = logging.getLogger(__name__)

ROW_DTYPE = np.dtype("<f2")
"""How vectors are kept on disk: little-endian float16."""
SPILL_ROWS = 1 << 16
"""Rows waiting in RAM before they are appended to the vectors file (when it is known)."""
PARALLEL_READ_ROWS = 1024
"""Reads of up to this many rows from disk (a query's re-ranking) are announced to the
kernel first, so that it fetches them in parallel; larger ones (training, exact scans) go
through the map."""
HNSW_QUANTIZER_LISTS = 1024
"""From this many lists on, the coarse quantizer is an HNSW graph instead of a flat scan."""
MIN_TRAIN = 64
"""The fewest vectors an ``"ivfpq"`` store trains on, whatever its settings say."""
_CHUNK = 1 << 14
_PQ_FEWEST = 16  # a PQ of 4 bits per sub-quantizer learns 16 centroids
_MAX_LISTS = 1 << 16


def _faiss() -> ModuleType:
    return require("faiss", purpose="FaissStore")


def key_selector(keys: npt.NDArray[np.int64]) -> tuple[Any, npt.NDArray[np.uint8]]:
    """A FAISS selector of the (non-negative) ``keys``, and the bitmap it reads: keep both
    alive while searching with it.

    One bit per key up to the largest: ten million keys take 1.25 MB and a few
    milliseconds, where FAISS's ``IDSelectorBatch`` hashes every key (about 4 s for the
    three million records a broad filter passes at 10M, before the search starts).
    """
    faiss = _faiss()
    bits = np.zeros(int(keys.max()) + 1 if len(keys) else 1, dtype=bool)
    bits[keys] = True
    bitmap = np.packbits(bits, bitorder="little")  # FAISS reads bit (key & 7) of byte key >> 3
    return faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap)), bitmap


def repair_hint(folder: Path) -> str:
    """The command that rebuilds a store's codes from its vectors."""
    return (
        f"rebuild it from its vectors with `zsv index --index INDEX_DIR --rebuild-store ivfpq` "
        f"(Python: zeroshot_vision.stores.rebuild_store({str(folder)!r}, 'ivfpq'))"
    )


@dataclass(frozen=True, kw_only=True)
class IvfPqSettings:
    """How an ``"ivfpq"`` store is trained and searched.

    Attributes:
        train_size: Vectors the store holds before it trains (searching exactly, flat,
            until then); it trains on all of them, so they should be a fair sample.
        lists: Inverted lists (IVF ``nlist``); 0 picks ``4 x sqrt(expected_count)``,
            a power of two, at most a 39th of the training vectors.
        code_bytes: Bytes of PQ code per vector (the largest divisor of the dimension
            not above this is used).
        nprobe: Lists scanned per query.
        rerank: Candidates re-scored exactly per hit asked for (``rerank x k``, at
            least 64).
        expected_count: Vectors the store is planned for (sizes ``lists``); 0: ten
            times the training vectors.
        indexed_fields: The metadata fields a saved store indexes for filters (equality,
            ``$in`` and ranges on them are index look-ups in its records file instead of
            a scan of every record): None, the default, indexes every field; a list only
            those named; ``()`` none. Filters on other fields stay exact, only slower.
    """

    train_size: int = 50_000
    lists: int = 0
    code_bytes: int = 96
    nprobe: int = 32
    rerank: int = 20
    expected_count: int = 0
    indexed_fields: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        fields = self.indexed_fields
        if fields is not None:
            if isinstance(fields, str) or not all(
                isinstance(name, str) and name for name in fields
            ):
                raise InvalidInputError(
                    "ivfpq setting indexed_fields must be a list of field names or None"
                )
            object.__setattr__(self, "indexed_fields", tuple(sorted(set(fields))))
        for name, value in asdict(self).items():
            if name == "indexed_fields":
                continue
            low = 0 if name in ("lists", "expected_count") else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InvalidInputError(f"ivfpq setting {name} must be an integer >= {low}")

    def as_json(self) -> dict[str, Any]:
        """The settings as the store's manifest records them."""
        found = asdict(self)
        if self.indexed_fields is None:
            del found["indexed_fields"]  # the default, as manifests before it say
        else:
            found["indexed_fields"] = list(self.indexed_fields)
        return found

    def lists_for(self, trained_on: int) -> int:
        """The number of lists to train on ``trained_on`` vectors."""
        if self.lists:
            return max(1, min(self.lists, trained_on))
        expected = self.expected_count or 10 * trained_on
        wanted = 2 ** round(math.log2(max(1.0, 4 * math.sqrt(expected))))
        most = max(1, trained_on // 39)  # FAISS asks for 39 training points per centroid
        return int(min(wanted, 2 ** int(math.log2(most)), _MAX_LISTS))

    def pq_for(self, dim: int, trained_on: int) -> tuple[int, int]:
        """``(sub-quantizers, bits each)``: the PQ code this many vectors can train."""
        m = max(
            divisor for divisor in range(1, min(dim, self.code_bytes) + 1) if dim % divisor == 0
        )
        bits = 8 if trained_on >= 4 * 256 else 4  # 256 (or 16) centroids per sub-space
        return m, bits


class DiskVectors:
    """Float16 rows indexed by key: committed ones in a memory-mapped file, new ones in RAM.

    Thread-safe for one writer and any number of readers: readers take a snapshot of
    (map, rows on disk, rows in RAM) and never see a row half moved.
    """

    def __init__(self, dim: int) -> None:
        self._dim = dim
        self._row_bytes = dim * ROW_DTYPE.itemsize
        self._path: Path | None = None
        self._disk_rows = 0
        self._map: npt.NDArray[np.float16] | None = None
        self._file: Any = None  # the same file, unbuffered, for reads of a few rows
        self._tail = np.zeros((0, dim), dtype=ROW_DTYPE)
        self._tail_rows = 0
        self._lock = threading.Lock()

    @property
    def path(self) -> Path | None:
        """The file rows are appended to, or None while they live in RAM only."""
        return self._path

    def __len__(self) -> int:
        return self._disk_rows + self._tail_rows

    @property
    def ram_bytes(self) -> int:
        """Bytes of rows waiting in RAM."""
        return int(self._tail.nbytes)

    def attach(self, path: Path, *, rows: int | None = None) -> None:
        """Read committed rows from ``path`` (rows beyond ``rows`` are ignored).

        Raises:
            IndexDamagedError: The file holds fewer than ``rows`` rows (truncated).
        """
        size = path.stat().st_size if path.exists() else 0
        held = size // self._row_bytes
        if rows is not None and held < rows:
            raise IndexDamagedError(
                f"the FaissStore vectors file {path} is truncated: {size} bytes, "
                f"{rows} vectors of dim {self._dim} need {rows * self._row_bytes}; the vectors "
                "cannot be rebuilt from the codes: restore the folder from a backup, or "
                "re-encode the photos (delete the index folder and run `zsv index` again)",
                path=str(path),
            )
        rows = held if rows is None else rows
        with self._lock:
            self._path = path
            self._disk_rows = rows
            self._map = self._open_map(path, rows)
            self._file = _open_file(path, rows)
            self._tail = np.zeros((0, self._dim), dtype=ROW_DTYPE)
            self._tail_rows = 0

    def place(self, path: Path) -> None:
        """Append rows to ``path`` from now on (a new store's file; emptied first)."""
        with self._lock:
            self._path = path
        if self._disk_rows:
            raise InvalidInputError("place() is for a store with no rows on disk yet")

    def _open_map(self, path: Path, rows: int) -> npt.NDArray[np.float16] | None:
        if not rows:
            return None
        return np.memmap(path, dtype=ROW_DTYPE, mode="r", shape=(rows, self._dim))

    def put(self, keys: npt.NDArray[np.int64], matrix: npt.NDArray[np.float32]) -> None:
        """Store ``matrix``'s rows under ``keys``; keys already held are left as they are.

        Keys are handed out in increasing order and never reused, so a key already held
        is a replayed delta whose rows the file has; a gap (keys lost to a crash) is
        filled with zeros.
        """
        fresh = keys >= len(self)
        if not fresh.any():
            return
        keys, matrix = keys[fresh], matrix[fresh]
        end = int(keys.max()) + 1
        need = end - self._disk_rows
        tail = self._tail
        if need > len(tail):
            grown = np.zeros((max(need, 2 * len(tail), 1024), self._dim), dtype=ROW_DTYPE)
            grown[: self._tail_rows] = tail[: self._tail_rows]
            tail = grown
        tail[keys - self._disk_rows] = matrix.astype(ROW_DTYPE)
        with self._lock:
            self._tail = tail
            self._tail_rows = need
        if self._path is not None and self._tail_rows >= SPILL_ROWS:
            self.flush()

    def rows(self, keys: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """The rows of ``keys`` as float32, in order."""
        with self._lock:
            vectors, handle = self._map, self._file
            disk_rows, tail = self._disk_rows, self._tail
        out = np.empty((len(keys), self._dim), dtype=np.float32)
        on_disk = keys < disk_rows
        if handle is not None and 1 < int(on_disk.sum()) <= PARALLEL_READ_ROWS:
            # A query's re-ranking reads a few hundred rows scattered over the file: when
            # they are not in the page cache, one read at a time waits on the disk for each
            # (0.1 ms on this machine's disk); announced first, they are fetched in parallel.
            picked = keys[on_disk]
            out[on_disk] = self._read_rows(handle, picked)
        elif on_disk.any():
            assert vectors is not None
            picked = keys[on_disk]
            order = np.argsort(picked)  # read the file front to back
            out_rows = np.flatnonzero(on_disk)[order]
            out[out_rows] = vectors[picked[order]]
        if not on_disk.all():
            out[~on_disk] = tail[keys[~on_disk] - disk_rows]
        return out

    def _read_rows(self, handle: Any, keys: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        size, fd = self._row_bytes, handle.fileno()
        order = np.argsort(keys)  # read the file front to back
        offsets = (keys[order] * size).tolist()
        if _ANNOUNCE is not None:
            # WILLNEED starts the disk reads of every row at once and returns: the reads
            # below then find most rows in the page cache. On this machine it fetched 200
            # cold rows in 4.0 ms (threads: 5.5 ms, one read at a time: 20 ms) and costs
            # 0.1 ms when they are cached (threads: 1 ms).
            for offset in offsets:
                _ANNOUNCE(fd, offset, size, os.POSIX_FADV_WILLNEED)
        buffer = memoryview(bytearray(len(offsets) * size))
        for row, offset in enumerate(offsets):
            if os.preadv(fd, [buffer[row * size : (row + 1) * size]], offset) != size:
                raise IndexDamagedError(
                    f"the FaissStore vectors file {self._path} is truncated", path=str(self._path)
                )
        out = np.empty((len(keys), self._dim), dtype=np.float32)
        out[order] = np.frombuffer(buffer, dtype=ROW_DTYPE).reshape(len(keys), self._dim)
        return out

    def flush(self) -> None:
        """Append the rows waiting in RAM to the file and sync it."""
        if self._path is None:
            raise InvalidInputError("these vectors have no file to flush to")
        path = self._path
        with self._lock:
            tail, tail_rows, disk_rows = self._tail, self._tail_rows, self._disk_rows
        if not tail_rows and path.exists() and path.stat().st_size == disk_rows * self._row_bytes:
            return
        mode = "r+b" if path.exists() else "w+b"
        with path.open(mode) as handle:
            # Rows past the committed ones are what a killed writer left: write over them.
            handle.seek(disk_rows * self._row_bytes)
            handle.write(np.ascontiguousarray(tail[:tail_rows]).tobytes())
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
        rows = disk_rows + tail_rows
        new_map = self._open_map(path, rows)
        new_file = self._file if self._file is not None else _open_file(path, rows)
        with self._lock:
            self._map, self._file, self._disk_rows = new_map, new_file, rows
            self._tail = np.zeros((0, self._dim), dtype=ROW_DTYPE)
            self._tail_rows = 0

    def copy_to(self, path: Path) -> None:
        """Write every row to ``path`` (a new file: temp, then rename) and use it from now on.

        A hard link stands in for a copy where the rows are all on disk already and the
        file system has links (a store rebuilt in a folder beside its target).
        """
        tmp = path.with_name(f".{path.name}.copying.tmp")
        tmp.unlink(missing_ok=True)
        with self._lock:
            source, disk_rows = self._path, self._disk_rows
        if source is not None and not self._tail_rows and disk_rows:
            try:
                if source.stat().st_size == disk_rows * self._row_bytes:
                    os.link(source, tmp)
                    tmp.replace(path)
                    self.attach(path, rows=disk_rows)
                    return
            except OSError:
                tmp.unlink(missing_ok=True)
        try:
            with tmp.open("wb") as handle:
                if source is not None and disk_rows:
                    with source.open("rb") as original:
                        left = disk_rows * self._row_bytes
                        while left:
                            block = original.read(min(left, 1 << 24))
                            if not block:
                                raise IndexDamagedError(
                                    f"the FaissStore vectors file {source} is truncated",
                                    path=str(source),
                                )
                            handle.write(block)
                            left -= len(block)
                handle.write(np.ascontiguousarray(self._tail[: self._tail_rows]).tobytes())
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.attach(path, rows=len(self))


_ANNOUNCE = getattr(os, "posix_fadvise", None)
"""Tells the kernel which parts of a file are read next (not on macOS or Windows)."""


class _RowFile:
    """A read-only descriptor of a vectors file, closed when no reader holds it any more
    (a reader may still read a file that a later save replaced)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)

    def fileno(self) -> int:
        return self._fd

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)


def _open_file(path: Path, rows: int) -> _RowFile | None:
    """``path`` opened for reading rows, or None while it holds none."""
    return _RowFile(path) if rows else None


class IvfPqIndex:
    """IVF-PQ codes in RAM over :class:`DiskVectors`, with exact re-ranking; see the module."""

    def __init__(self, dim: int, settings: IvfPqSettings) -> None:
        self.d = dim
        self.settings = settings
        self.vectors = DiskVectors(dim)
        self._alive = np.zeros(0, dtype=bool)
        self._count = 0
        self._ivf: Any = None
        self._warned = False

    # -- what FaissStore calls -----------------------------------------------------------

    @property
    def ntotal(self) -> int:
        """Live vectors."""
        return self._count

    @property
    def is_trained(self) -> bool:
        """Whether the codes are built (else searches are exact over the vectors)."""
        return self._ivf is not None

    def add_with_ids(self, matrix: npt.ArrayLike, keys: npt.ArrayLike) -> None:
        rows = np.ascontiguousarray(matrix, dtype=np.float32)
        key_array = np.asarray(keys, dtype=np.int64)
        if not len(key_array):
            return
        self.vectors.put(key_array, rows)
        end = int(key_array.max()) + 1
        if end > len(self._alive):
            grown = np.zeros(max(end, 2 * len(self._alive)), dtype=bool)
            grown[: len(self._alive)] = self._alive
            self._alive = grown
        self._count += int((~self._alive[key_array]).sum())
        self._alive[key_array] = True
        if self._ivf is not None:
            self._ivf.add_with_ids(rows, key_array)

    def remove_ids(self, keys: npt.ArrayLike) -> None:
        key_array = np.asarray(keys, dtype=np.int64)
        key_array = key_array[key_array < len(self._alive)]
        self._count -= int(self._alive[key_array].sum())
        self._alive[key_array] = False
        if self._ivf is not None and len(key_array):
            self._ivf.remove_ids(_faiss().IDSelectorBatch(key_array))

    def reconstruct(self, key: int) -> npt.NDArray[np.float32]:
        row: npt.NDArray[np.float32] = self.vectors.rows(np.asarray([key], dtype=np.int64))[0]
        return row

    def reconstruct_batch(self, keys: npt.ArrayLike) -> npt.NDArray[np.float32]:
        rows: npt.NDArray[np.float32] = self.vectors.rows(np.asarray(keys, dtype=np.int64))
        return rows

    def live_keys(self) -> npt.NDArray[np.int64]:
        """Every live key, ascending."""
        return np.flatnonzero(self._alive).astype(np.int64)

    # -- training ------------------------------------------------------------------------

    def train_size(self) -> int:
        """Vectors needed before the codes are trained."""
        return max(MIN_TRAIN, self.settings.train_size, _PQ_FEWEST)

    def maybe_train(self) -> bool:
        """Train and fill the codes once enough vectors arrived; True if it did."""
        if self._ivf is not None:
            return False
        if self._count < self.train_size():
            if not self._warned and self._count:
                logger.warning(
                    "the ivfpq store holds %d vectors, fewer than the %d it trains on: it "
                    "searches exactly (flat) until they arrive",
                    self._count,
                    self.train_size(),
                )
                self._warned = True
            return False
        self._ivf = self._trained(self.live_keys())
        return True

    def _trained(self, keys: npt.NDArray[np.int64]) -> Any:
        faiss = _faiss()
        sample = keys
        if len(sample) > self.train_size():
            rng = np.random.default_rng(0)
            sample = np.sort(rng.choice(keys, self.train_size(), replace=False))
        lists = self.settings.lists_for(len(sample))
        m, bits = self.settings.pq_for(self.d, len(sample))
        coarse = f"IVF{lists}_HNSW32" if lists >= HNSW_QUANTIZER_LISTS else f"IVF{lists}"
        ivf = faiss.index_factory(self.d, f"{coarse},PQ{m}x{bits}", faiss.METRIC_INNER_PRODUCT)
        # The factory turns on polysemous training (codes ordered for Hamming search),
        # which this kind never uses and which costs minutes even on small samples. (The
        # factory's object owns the index: keep it, not the downcast view.)
        faiss.downcast_index(faiss.extract_index_ivf(ivf)).do_polysemous_training = False
        ivf.train(self.vectors.rows(sample))
        for start in range(0, len(keys), _CHUNK):  # streamed: one chunk in RAM at a time
            chunk = keys[start : start + _CHUNK]
            ivf.add_with_ids(self.vectors.rows(chunk), chunk)
        logger.info(
            "trained an ivfpq index on %d vectors (%d lists, PQ%dx%d) and added %d",
            len(sample),
            lists,
            m,
            bits,
            len(keys),
        )
        return ivf

    def retrain(self) -> None:
        """Train the codes again on the live vectors (if there are enough)."""
        self._ivf = None
        self.maybe_train()

    # -- search --------------------------------------------------------------------------

    def search_keys(
        self,
        query: npt.NDArray[np.float32],
        k: int,
        allowed: npt.NDArray[np.int64] | None,
        nprobe: int | None = None,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The top ``k`` (exact scores, keys) of one query, among ``allowed`` if given."""
        if self._ivf is None or (allowed is not None and len(allowed) <= 4 * _CHUNK):
            return self._exact(query, k, allowed)
        faiss = _faiss()
        probe = min(nprobe or self.settings.nprobe, self._ivf.nlist)
        params = faiss.SearchParametersIVF(nprobe=probe)
        selector = None
        if allowed is not None:
            selector = key_selector(allowed)  # the bitmap, too, lives until the search ends
            params.sel = selector[0]
        if self._ivf.nlist >= HNSW_QUANTIZER_LISTS:
            quantizer_params = faiss.SearchParametersHNSW(efSearch=max(64, 2 * probe))
            params.quantizer_params = quantizer_params
        wanted = min(max(self.settings.rerank * k, 64), self._count)
        _, keys = self._ivf.search(query.reshape(1, -1), wanted, params=params)
        found = keys[0][keys[0] >= 0]
        if len(found) < k:  # the lists probed held too few (that pass): search exactly
            return self._exact(query, k, allowed)
        return _top(self.vectors.rows(found) @ query.reshape(-1), found, k)

    def _exact(
        self, query: npt.NDArray[np.float32], k: int, allowed: npt.NDArray[np.int64] | None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        keys = self.live_keys() if allowed is None else allowed
        best_scores = np.zeros(0, dtype=np.float32)
        best_keys = np.zeros(0, dtype=np.int64)
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            best_scores = np.concatenate(
                [best_scores, self.vectors.rows(chunk) @ query.reshape(-1)]
            )
            best_keys = np.concatenate([best_keys, chunk])
            if len(best_scores) > k:
                best_scores, best_keys = _top(best_scores, best_keys, k)
        return _top(best_scores, best_keys, k)

    # -- persistence ---------------------------------------------------------------------

    def write_codes(self, path: Path) -> None:
        """Write the trained codes to ``path`` (an empty file while untrained)."""
        if self._ivf is None:
            path.write_bytes(b"")
        else:
            _faiss().write_index(self._ivf, str(path))

    def read_codes(self, path: Path) -> None:
        """Read codes written by :meth:`write_codes`.

        Raises:
            IndexDamagedError: The file cannot be read as a FAISS index (truncated...).
        """
        if path.stat().st_size == 0:
            self._ivf = None
            return
        try:
            ivf = _faiss().read_index(str(path))
        except RuntimeError as exc:
            raise IndexDamagedError(
                f"the FaissStore codes file {path} is damaged ({str(exc).splitlines()[0]}); "
                + repair_hint(path.parent),
                path=str(path),
            ) from exc
        if ivf.d != self.d:
            raise IndexDamagedError(
                f"the codes file {path} is of dimension {ivf.d}", path=str(path)
            )
        self._ivf = ivf

    def restore(self, keys: npt.NDArray[np.int64]) -> None:
        """Mark ``keys`` live (the records of a loaded generation)."""
        self._alive = np.zeros(int(keys.max()) + 1 if len(keys) else 0, dtype=bool)
        self._alive[keys] = True
        self._count = len(keys)

    def code_count(self) -> int:
        """Vectors in the codes (should equal the live ones once trained)."""
        return int(self._ivf.ntotal) if self._ivf is not None else self._count

    def ram_bytes(self) -> int:
        """Bytes of RAM this index holds: codes, ids, centroids, liveness, unsaved rows."""
        held = self._alive.nbytes + self.vectors.ram_bytes
        if self._ivf is not None:
            invlists = self._ivf.invlists
            held += self._ivf.ntotal * (invlists.code_size + 8)
            held += (
                self._ivf.nlist * self.d * 4 * (2 if self._ivf.nlist >= HNSW_QUANTIZER_LISTS else 1)
            )
            held += self._ivf.pq.M * (1 << self._ivf.pq.nbits) * (self.d // self._ivf.pq.M) * 4
        return int(held)

    def describe(self) -> str:
        """One line on how the codes are built."""
        if self._ivf is None:
            return f"untrained (exact until {self.train_size()} vectors)"
        pq = self._ivf.pq
        return f"{self._ivf.nlist} lists, PQ{pq.M}x{pq.nbits}, nprobe {self.settings.nprobe}"


def _top(
    scores: npt.NDArray[np.float32], keys: npt.NDArray[np.int64], k: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    if len(scores) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        scores, keys = scores[part], keys[part]
    order = np.argsort(-scores, kind="stable")
    return scores[order].astype(np.float32), keys[order]


def remove_unnamed_vectors(folder: Path, keep: set[str]) -> None:
    """Remove vectors files of ``folder`` that no kept manifest names."""
    for path in folder.glob("vectors-*.f16"):
        if path.name not in keep:
            path.unlink(missing_ok=True)


__all__ = ["DiskVectors", "IvfPqIndex", "IvfPqSettings", "repair_hint"]
