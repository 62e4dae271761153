"""What a running server holds: its models (each with a batcher) and its open indexes.

Indexes that use the same model share one encoder and one batcher. Each index is
reopened when its folder's version changes (a concurrent ``zsv index`` committed, or this
server wrote to it), as the app does; an engine being replaced is closed once the last
request that uses it is done. Writes open a short-lived writer engine on the model
thread, so the folder's lock is held only while a write runs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._index.folder import index_version
from zeroshot_vision.server._batching import (
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_WAIT_MS,
    DEFAULT_QUEUE_SIZE,
    BatchedEncoder,
    Batcher,
    BatchObserver,
)

if TYPE_CHECKING:
    from zeroshot_vision._encoder import Encoder
    from zeroshot_vision._engine import SearchEngine

__all__ = ["BatchOptions", "IndexSpec", "ServedIndex", "ServedModel", "Service", "parse_index_spec"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class IndexSpec:
    """One ``--index [NAME=]DIR``: the name the API knows it by, and its folder."""

    name: str
    path: Path


def parse_index_spec(text: str) -> IndexSpec:
    """``NAME=DIR`` or ``DIR`` (named after the folder) as an :class:`IndexSpec`.

    Raises:
        InvalidInputError: An empty name or folder, or a name with characters a URL
            path cannot hold plainly.
    """
    name, sep, folder = text.partition("=")
    if not sep or os.sep in name or "/" in name:
        name, folder = "", text
    path = Path(folder).expanduser()
    if not folder.strip():
        raise InvalidInputError(f"--index {text!r}: give a folder (NAME=DIR or DIR)")
    name = name.strip() or Path(os.path.abspath(path)).name  # noqa: PTH100
    if not name or not all(ch.isalnum() or ch in "-_." for ch in name):
        raise InvalidInputError(
            f"--index {text!r}: an index name may hold letters, digits, '-', '_' and '.'"
        )
    return IndexSpec(name=name, path=path)


@dataclass(frozen=True, kw_only=True)
class BatchOptions:
    """How a model's batcher gathers requests (see :class:`~.batching.Batcher`)."""

    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS
    queue_size: int = DEFAULT_QUEUE_SIZE


@dataclass(kw_only=True)
class ServedModel:
    """A loaded encoder, its batcher, and the names the API accepts for it."""

    encoder: Encoder
    batcher: Batcher
    owned: bool = True
    """Whether the service loaded the encoder (and closes it) or was handed it."""
    created: int = field(default_factory=lambda: int(time.time()))
    text_tokens: int = 0
    """Tokens the text encoder reads per text: every text is padded to this length."""

    def __post_init__(self) -> None:
        # Measured once, before any request: the tokenizer is not safe to share between
        # threads, and afterwards only the model thread uses it.
        if not self.text_tokens:
            self.text_tokens = int(self.encoder.tokenize(["a"])["input_ids"].shape[1])

    @property
    def name(self) -> str:
        """The model's name (its checkpoint name or folder)."""
        return str(self.encoder.model_name)

    @property
    def aliases(self) -> list[str]:
        """Other names for it: the last part of its name (``siglip-base-patch16-224``)."""
        short = Path(self.name.rstrip("/\\")).name
        return [short] if short and short != self.name else []

    @property
    def batched(self) -> Encoder:
        """The encoder with its forward passes sent through the batcher."""
        return cast("Encoder", BatchedEncoder(self.batcher))

    def answers_to(self, name: str) -> bool:
        """Whether ``name`` is this model's name or one of its aliases."""
        return name == self.name or name in self.aliases


class ServedIndex:
    """An index folder open for searching, reopened when a writer commits to it.

    Args:
        spec: Its name and folder.
        model: The model it searches with.
        writable: Whether the API may add or remove records.
    """

    def __init__(self, spec: IndexSpec, model: ServedModel, *, writable: bool) -> None:
        self.name = spec.name
        self.path = Path(os.path.abspath(spec.path))  # noqa: PTH100
        self.real_path = os.path.realpath(self.path)
        self.model = model
        self.writable = writable
        self._lock = threading.Lock()
        self._users: dict[int, int] = {}
        self._retired: dict[int, SearchEngine] = {}
        self._version = index_version(self.path)
        self._engine = self._open()

    def _open(self) -> SearchEngine:
        from zeroshot_vision._engine import SearchEngine

        return SearchEngine.open(self.path, encoder=self.model.batched)

    def _check_model(self) -> None:
        """Refuse a folder that ``zsv reindex`` moved to another model than the one served:
        its vectors do not compare with this model's queries, even at the same dimension.
        """
        from zeroshot_vision._index.folder import IndexFolder
        from zeroshot_vision._models import same_checkpoint

        recorded = IndexFolder.open(self.path).manifest.model
        if not same_checkpoint(self.model.name, recorded):
            raise InvalidInputError(
                f"the index was reindexed to {recorded}, but this server runs "
                f"{self.model.name}; still answering from the index as it was: restart "
                "zsv serve to serve the new model"
            )

    @contextmanager
    def reading(self) -> Iterator[SearchEngine]:
        """The current engine, reopened first if the folder changed since it was opened."""
        version = index_version(self.path)
        with self._lock:
            if version != self._version:
                self._reopen(version)
            engine = self._engine
            self._users[id(engine)] = self._users.get(id(engine), 0) + 1
        try:
            yield engine
        finally:
            with self._lock:
                self._users[id(engine)] -= 1
                if not self._users[id(engine)]:
                    del self._users[id(engine)]
                    old = self._retired.pop(id(engine), None)
                    if old is not None:
                        old.close()

    def _reopen(self, version: str) -> None:
        # Called with the lock held. A failure keeps the engine that works.
        try:
            self._check_model()
            fresh = self._open()
        except InvalidInputError as exc:  # reindexed to another model: not ours to serve
            logger.error("index %s: %s", self.name, exc)
            self._version = version  # said once; the old engine keeps answering
            return
        except Exception:  # a half-written folder: try again next request
            logger.warning("cannot reopen index %s yet", self.name, exc_info=True)
            return
        old, self._engine, self._version = self._engine, fresh, version
        logger.info("index %s changed on disk; reopened (%d records)", self.name, len(fresh.store))
        if id(old) in self._users:
            self._retired[id(old)] = old
        else:
            old.close()

    def write(self, change: Callable[[SearchEngine], T]) -> T:
        """Run ``change`` on a writer engine of this folder, on the model thread, and commit.

        The writer takes the folder's lock for the duration of the change only; a
        concurrent ``zsv index`` makes it fail with ``IndexLockedError``.
        """
        from zeroshot_vision._engine import SearchEngine

        def run() -> T:
            self._check_model()  # never this model's vectors into another model's store
            with SearchEngine.open(self.path, encoder=self.model.encoder) as writer:
                return change(writer)

        return self.model.batcher.call(run)

    def close(self) -> None:
        """Close the engines (a search-only engine writes nothing)."""
        with self._lock:
            engines = [self._engine, *self._retired.values()]
            self._retired.clear()
        for engine in engines:
            engine.close()


class Service:
    """The models and indexes of one server.

    Args:
        models: The loaded models (the first answers requests that name none).
        indexes: The open indexes, by name.
    """

    def __init__(self, models: Sequence[ServedModel], indexes: Mapping[str, ServedIndex]) -> None:
        self.models = list(models)
        self.indexes = dict(indexes)
        self._closed = False

    @classmethod
    def load(
        cls,
        indexes: Sequence[IndexSpec],
        *,
        model: str | None = None,
        device: str | None = None,
        dtype: Any = None,
        allow_writes: bool = False,
        batching: BatchOptions | None = None,
        observer: BatchObserver | None = None,
        encoders: Mapping[str, Encoder] | None = None,
        progress: bool = False,
    ) -> Service:
        """Load each model once and open each index with it.

        Args:
            indexes: The index folders to serve; may be empty when ``model`` is given.
            model: Use this checkpoint for every index (and serve it with no index).
            device: Torch device of the encoders.
            dtype: Torch dtype of the encoders.
            allow_writes: Let the API add and remove records.
            batching: How requests are batched.
            observer: Told about batches and queue depth (the server's metrics).
            encoders: Already loaded encoders by model name, used instead of loading
                (tests, notebooks).
            progress: Show the model loading on stderr.

        Raises:
            InvalidInputError: Two indexes with one name, or neither an index nor a model.
            IndexNotFoundError: A folder holds no index.
            ModelLoadError: A model cannot be loaded.
        """
        from zeroshot_vision._index import IndexFolder

        names = [spec.name for spec in indexes]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise InvalidInputError(
                f"two indexes are named {duplicated[0]!r}; name them: --index NAME=DIR"
            )
        if not indexes and model is None:
            raise InvalidInputError("give at least one --index (or a --model to serve)")
        # Each index is served through the route (backend, precision) it was encoded with.
        manifests = {spec.name: IndexFolder.open(spec.path).manifest for spec in indexes}
        wanted = {
            name: (model or manifest.model, *_recorded_route(manifest))
            for name, manifest in manifests.items()
        }
        options = batching or BatchOptions()
        loaded: dict[tuple[str, str, str | None], ServedModel] = {}
        served: dict[str, ServedIndex] = {}
        extra = [(model, "torch", None)] if model else []
        try:
            for key in dict.fromkeys([*wanted.values(), *extra]):
                name, backend, precision = key
                given = (encoders or {}).get(name)
                encoder = given or _load_encoder(name, device, dtype, progress, backend, precision)
                batcher = Batcher(
                    encoder,
                    max_batch_size=options.max_batch_size,
                    max_wait_ms=options.max_wait_ms,
                    queue_size=options.queue_size,
                    observer=observer,
                )
                loaded[key] = ServedModel(encoder=encoder, batcher=batcher, owned=given is None)
            for spec in indexes:
                served[spec.name] = ServedIndex(
                    spec, loaded[wanted[spec.name]], writable=allow_writes
                )
        except BaseException:
            cls(list(loaded.values()), served).close()
            raise
        return cls(list(loaded.values()), served)

    @property
    def ready(self) -> bool:
        """Whether every model thread runs (the indexes opened when the service did)."""
        return not self._closed and all(model.batcher.alive for model in self.models)

    def model(self, name: str | None) -> ServedModel:
        """The model called ``name`` (or the first one, for ``None``).

        Raises:
            KeyError: No loaded model answers to ``name``.
        """
        if name is None:
            if self.models:
                return self.models[0]
            raise KeyError(name)
        for model in self.models:
            if model.answers_to(name):
                return model
        raise KeyError(name)

    def index(self, name: str | None) -> ServedIndex:
        """The index called ``name``; with one index, ``None`` (or its folder) names it.

        Raises:
            KeyError: No index of that name, or ``None`` with several indexes.
        """
        if name is None:
            if len(self.indexes) == 1:
                return next(iter(self.indexes.values()))
            raise KeyError(None)
        if name in self.indexes:
            return self.indexes[name]
        # The CLI's --index DIR, sent as an absolute path: compared as text, never read.
        for index in self.indexes.values():
            if name in (str(index.path), index.real_path):
                return index
        raise KeyError(name)

    def close(self) -> None:
        """Finish queued work, stop the model threads, close the indexes."""
        if self._closed:
            return
        self._closed = True
        for model in self.models:
            model.batcher.close()
        for index in self.indexes.values():
            index.close()
        for model in self.models:
            if model.owned:
                model.encoder.close()


def _recorded_route(manifest: Any) -> tuple[str, str | None]:
    """The backend and precision an index was encoded with (torch: the default dtype)."""
    record = manifest.encoder
    if record is None or record.backend == "torch":
        return "torch", None
    return record.backend, record.precision


def _load_encoder(
    name: str,
    device: str | None,
    dtype: Any,
    progress: bool,
    backend: str = "torch",
    precision: str | None = None,
) -> Encoder:
    from zeroshot_vision._encoder import Encoder

    encoder = Encoder.from_pretrained(
        name, device=device, dtype=dtype, progress=progress, backend=backend, precision=precision
    )
    encoder.warm_up()
    return encoder
