"""``SearchEngine``: an encoder and a vector store, composed into search and classify."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zeroshot_vision.errors import DimensionMismatchError, InvalidInputError
from zeroshot_vision.images import describe_source, iter_loaded, load_image
from zeroshot_vision.stores.base import check_k
from zeroshot_vision.stores.filters import validate_filter
from zeroshot_vision.types import (
    ImageFailure,
    ImageSource,
    IndexReport,
    LabelScore,
    Metadata,
    SearchResult,
)

if TYPE_CHECKING:
    from PIL import Image

    from zeroshot_vision.encoder import Encoder
    from zeroshot_vision.stores.base import VectorStore
    from zeroshot_vision.types import Hit

__all__ = ["SearchEngine", "default_ids"]

logger = logging.getLogger(__name__)

Progress = Callable[[int], None]


def default_ids(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Ids for image files: the file name stem, or the whole path where stems collide."""
    stems = [Path(p).stem for p in paths]
    counts = Counter(stems)
    return [stem if counts[stem] == 1 else os.fspath(p) for stem, p in zip(stems, paths)]


class SearchEngine:
    """Text-to-image search, image-to-image search and zero-shot classification.

    Args:
        encoder: Embeds images and texts (:class:`~zeroshot_vision.encoder.Encoder`).
        store: Holds the image vectors (any :class:`~zeroshot_vision.stores.VectorStore`).

    Raises:
        DimensionMismatchError: The encoder's and the store's dimensions differ.

    Example:
        >>> engine = SearchEngine(Encoder.from_pretrained(), FaissStore(1152))  # doctest: +SKIP
        >>> engine.index_images(Path("photos").glob("*.jpg"))  # doctest: +SKIP
        >>> engine.search("a happy golden retriever puppy", k=5)  # doctest: +SKIP
    """

    def __init__(self, encoder: Encoder, store: VectorStore) -> None:
        if encoder.dim != store.dim:
            raise DimensionMismatchError(
                f"the encoder makes {encoder.dim}-d vectors but the store holds {store.dim}-d "
                "vectors; build the store with dim=encoder.dim",
                expected=store.dim,
                actual=encoder.dim,
            )
        self.encoder = encoder
        self.store = store

    def __repr__(self) -> str:
        return f"SearchEngine(encoder={self.encoder!r}, store={self.store!r})"

    # -- indexing ----------------------------------------------------------------------

    def index_images(
        self,
        images: Iterable[ImageSource],
        *,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Metadata | None] | None = None,
        batch_size: int | None = None,
        progress: Progress | None = None,
    ) -> IndexReport:
        """Embed images and upsert them into the store, skipping unreadable ones.

        Args:
            images: Paths, bytes or PIL images.
            ids: One id per image. Default (paths only): the file name stem, or the path
                where two stems collide.
            metadata: One mapping (or ``None``) per image. For paths, ``"path"`` is
                added unless the mapping already has one.
            batch_size: Images per forward pass and per store write.
            progress: Called with the number of images just handled, after each batch.

        Returns:
            The ids written and, for each skipped image, the reason. A bad image (missing,
            truncated, not an image, a decompression bomb) never aborts the batch.
        """
        sources = list(images)
        if ids is None:
            if not all(isinstance(s, (str, os.PathLike)) for s in sources):
                raise InvalidInputError("pass ids= when indexing bytes or PIL images")
            ids = default_ids(sources)  # type: ignore[arg-type]
        if len(ids) != len(sources):
            raise InvalidInputError(f"got {len(sources)} images but {len(ids)} ids")
        if metadata is not None and len(metadata) != len(sources):
            raise InvalidInputError(f"got {len(sources)} images but {len(metadata)} metadata")
        for i, item in enumerate(ids):
            if not isinstance(item, str) or not item:
                raise InvalidInputError(f"ids[{i}] must be a non-empty string, got {item!r}")

        size = batch_size or self.encoder.batch_size
        indexed: list[str] = []
        failed: list[ImageFailure] = []
        jobs = iter(range(len(sources)))
        loaded = iter_loaded(sources, draft_size=self.encoder.draft_size)
        while chunk := list(islice(zip(jobs, loaded), size)):
            good: list[tuple[int, Image.Image]] = []
            for i, (source, image) in chunk:
                if isinstance(image, Exception):
                    logger.warning("skipping %s", image)
                    failed.append(ImageFailure(describe_source(source), image.reason))
                else:
                    good.append((i, image))
            if good:
                vectors = self.encoder.encode_loaded([image for _, image in good])
                batch_ids = [ids[i] for i, _ in good]
                batch_meta = [self._metadata_for(sources[i], metadata, i) for i, _ in good]
                self.store.upsert(batch_ids, vectors, batch_meta)
                indexed.extend(batch_ids)
            if progress is not None:
                progress(len(chunk))
        report = IndexReport(tuple(indexed), tuple(failed))
        logger.info("index_images: %s", report)
        return report

    @staticmethod
    def _metadata_for(
        source: object, metadata: Sequence[Metadata | None] | None, i: int
    ) -> dict[str, Any]:
        meta = dict(metadata[i] or {}) if metadata is not None else {}
        if isinstance(source, (str, os.PathLike)):
            meta.setdefault("path", os.fspath(source))
        return meta

    # -- search ------------------------------------------------------------------------

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        filter: Mapping[str, Any] | None = None,
        min_probability: float | None = None,
        negative: str | None = None,
        negative_weight: float = 0.5,
    ) -> list[SearchResult]:
        """The images that best match a text query, best first.

        Args:
            query: What to look for, in words ("a cyber-punk street at night").
            k: How many results at most.
            filter: A metadata filter (:mod:`zeroshot_vision.stores.filters`).
            min_probability: Drop results whose calibrated probability is lower.
            negative: Words to steer away from ("people"). Retrieval uses the query
                direction minus ``negative_weight`` times the negative direction; scores
                and probabilities still describe the match with ``query`` alone.
            negative_weight: How hard to steer away from ``negative``.

        Raises:
            InvalidInputError: Empty query, ``k`` not a positive integer, a bad filter,
                or ``min_probability`` outside [0, 1].
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("the query is empty; type some words to search for")
        k = check_k(k)
        validate_filter(filter)
        if min_probability is not None and not 0.0 <= min_probability <= 1.0:
            raise InvalidInputError(f"min_probability must be in [0, 1], got {min_probability}")
        texts = [query] if not (negative and negative.strip()) else [query, negative]
        vectors = self.encoder.encode_texts(texts)
        positive = vectors[0]
        if len(vectors) == 1:
            hits = self.store.query(positive, k=k, filter=filter)
            scores = np.array([hit.score for hit in hits])
        else:
            direction = positive - negative_weight * vectors[1]
            hits = self.store.query(direction, k=k, filter=filter)
            records = self.store.fetch([hit.id for hit in hits])
            scores = np.array(
                [
                    float(records[hit.id].vector @ positive) if hit.id in records else hit.score
                    for hit in hits
                ]
            )
        probabilities = self.encoder.probability(scores) if len(hits) else np.zeros(0)
        results = [
            SearchResult(hit.id, float(score), float(p), hit.metadata)
            for hit, score, p in zip(hits, scores, probabilities)
        ]
        if min_probability is not None:
            results = [r for r in results if (r.probability or 0.0) >= min_probability]
        return results

    def search_by_image(
        self, image: ImageSource, k: int = 10, *, filter: Mapping[str, Any] | None = None
    ) -> list[SearchResult]:
        """The stored images most similar to ``image`` (a path, bytes or PIL image).

        Image-to-image similarity has no calibrated probability: ``probability`` is None.

        Raises:
            ImageLoadError: ``image`` cannot be read.
        """
        k = check_k(k)
        validate_filter(filter)
        vector = self.encoder.encode_loaded([load_image(image)])[0]
        return _results(self.store.query(vector, k=k, filter=filter))

    def search_by_id(
        self, id: str, k: int = 10, *, filter: Mapping[str, Any] | None = None
    ) -> list[SearchResult]:
        """ "More like this": the stored images most similar to a stored one, itself excluded.

        Raises:
            KeyError: ``id`` is not in the store.
        """
        k = check_k(k)
        validate_filter(filter)
        record = self.store.fetch([id]).get(id)
        if record is None:
            raise KeyError(f"no image with id {id!r} in the store")
        hits = self.store.query(record.vector, k=k + 1, filter=filter)
        return _results([hit for hit in hits if hit.id != id][:k])

    def classify(
        self, image: ImageSource, labels: Sequence[str], *, softmax: bool = False
    ) -> list[LabelScore]:
        """Score ``labels`` against one image, highest probability first.

        Args:
            image: A path, bytes or PIL image.
            labels: Candidate descriptions ("a dog", "a cat", ...), or one string of
                comma-separated labels. Duplicates are scored once.
            softmax: False (default): independent sigmoid probabilities, as SigLIP was
                trained; several labels can be likely, or none. True: a softmax over the
                labels, for "exactly one of these".

        Raises:
            InvalidInputError: No labels, or an empty label.
            ImageLoadError: ``image`` cannot be read.
        """
        if isinstance(labels, str):
            labels = [part.strip() for part in labels.split(",")]
        unique = list(dict.fromkeys(labels))
        if not unique:
            raise InvalidInputError("give at least one label to classify against")
        text_vectors = self.encoder.encode_texts(unique)
        image_vector = self.encoder.encode_loaded([load_image(image)])[0]
        cosines = text_vectors @ image_vector
        if softmax:
            logits = self.encoder.logits(cosines)
            weights = np.exp(logits - logits.max())
            probabilities = weights / weights.sum()
        else:
            probabilities = self.encoder.probability(cosines)
        order = np.argsort(-cosines, kind="stable")
        return [LabelScore(unique[i], float(probabilities[i]), float(cosines[i])) for i in order]


def _results(hits: list[Hit]) -> list[SearchResult]:
    return [SearchResult(hit.id, hit.score, None, hit.metadata) for hit in hits]
