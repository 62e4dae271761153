"""``POST /v1/search``, ``/v1/classify`` and ``/v1/tag``: what ``zsv search``,
``zsv classify`` and ``zsv tag INDEX`` print, as JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends

from zeroshot_vision._checks import clean_labels, label_parts
from zeroshot_vision._errors import ImageLoadError, InvalidInputError
from zeroshot_vision.server._context import APIError, ServerContext, context, raised
from zeroshot_vision.server._inputs import Limits, check_text
from zeroshot_vision.server._schemas import (
    ClassifyRequest,
    ClassifyResponse,
    ImageLabelsOut,
    LabelScoreOut,
    MomentOut,
    SearchRequest,
    SearchResponse,
    SearchResultOut,
    TaggedImage,
    TagRequest,
    TagResponse,
)

if TYPE_CHECKING:
    from PIL import Image

    from zeroshot_vision._query import Query

__all__ = ["classify", "router", "search", "tag"]

router = APIRouter(tags=["search"])

Context = Annotated[ServerContext, Depends(context)]


@router.post("/v1/search")
async def search(body: SearchRequest, ctx: Context) -> SearchResponse:
    """The best matches for words, images, or both (``zsv search --json``'s fields)."""
    limits = ctx.limits
    index = ctx.find_index(body.index)
    if isinstance(body.k, bool) or not 1 <= body.k <= limits.max_k:
        raise APIError(400, f"k must be from 1 to {limits.max_k}, got {body.k}", param="k")
    if len(body.images) > limits.max_inputs:
        raise APIError(400, "too many images", code="too_many_inputs", param="images")

    def work() -> SearchResponse:
        items = [(f"images[{i}]", item) for i, item in enumerate(body.images)]
        with ctx.images_of(index.model, items) as pictures, index.reading() as engine:
            query = _search_query(body, [raised(im) for im in pictures], limits)
            results = engine.search(
                query,
                k=body.k,
                filter=body.filter,
                min_probability=body.min_probability,
                mode=body.mode,
                text_weight=body.text_weight,
                group_by=body.group_by,
            )
        return SearchResponse(
            index=index.name,
            query=str(query),
            results=[
                SearchResultOut(
                    rank=rank,
                    id=r.id,
                    score=r.score,
                    probability=r.probability,
                    metadata=dict(r.metadata),
                    found_by=list(r.found_by),
                    snippet=r.snippet,
                    fused_score=r.fused_score,
                    timestamp=r.timestamp,
                    moments=[
                        MomentOut(
                            id=m.id,
                            score=m.score,
                            probability=m.probability,
                            timestamp=m.timestamp,
                        )
                        for m in r.moments
                    ],
                )
                for rank, r in enumerate(results, start=1)
            ],
            warnings=list(results.warnings),
        )

    response: SearchResponse = await ctx.on_model(index.model, work)
    return response


@router.post("/v1/classify")
async def classify(body: ClassifyRequest, ctx: Context) -> ClassifyResponse:
    """Each label's independent probability for each image (``zsv classify``).

    An image that cannot be read gets an ``error`` instead of labels; the others are
    answered all the same.
    """
    limits = ctx.limits
    model = ctx.find_model(body.model)
    if not body.images:
        raise APIError(400, "images is empty; give at least one image", param="images")
    if len(body.images) > limits.max_inputs:
        raise APIError(400, "too many images", code="too_many_inputs", param="images")

    def work() -> ClassifyResponse:
        labels = _checked_labels(body.labels, limits)
        decoded: list[tuple[int, Image.Image]] = []
        results: list[ImageLabelsOut] = []
        items = [(f"images[{i}]", item) for i, item in enumerate(body.images)]
        with ctx.images_of(model, items) as pictures:
            for i, picture in enumerate(pictures):
                if isinstance(picture, ImageLoadError):
                    results.append(ImageLabelsOut(index=i, error=picture.reason))
                else:
                    decoded.append((i, picture))
            text_vectors = model.batcher.encode_texts(labels)
            image_vectors = model.batcher.encode_images([im for _, im in decoded])
        scored = model.encoder.score_labels(
            labels, text_vectors, image_vectors, softmax=body.softmax
        )
        for (i, _), scores in zip(decoded, scored):
            results.append(ImageLabelsOut(index=i, labels=[_label(s) for s in scores]))
        results.sort(key=lambda r: r.index)
        return ClassifyResponse(model=model.name, results=results)

    response: ClassifyResponse = await ctx.on_model(model, work)
    return response


@router.post("/v1/tag")
async def tag(body: TagRequest, ctx: Context) -> TagResponse:
    """Every stored image's labels, from its stored vector (``zsv tag INDEX``)."""
    index = ctx.find_index(body.index)

    def work() -> TagResponse:
        labels = _checked_labels(body.labels, ctx.limits)
        with index.reading() as engine:
            report = engine.classify_indexed(labels)
        return TagResponse(
            index=index.name,
            results=[
                TaggedImage(image=r.source, labels=[_label(s) for s in r.labels])
                for r in report.results
            ],
        )

    response: TagResponse = await ctx.on_model(index.model, work)
    return response


def _checked_labels(labels: str | list[str], limits: Limits) -> list[str]:
    """The labels of a classify or tag request, within the limits (run off the event loop).

    Raises:
        APIError: 413 ``too_many_labels`` over ``limits.max_labels``.
        InvalidInputError: A label that is too long or not UTF-8, or none at all.
    """
    count = label_parts(labels)
    if count > limits.max_labels:
        raise APIError(
            413,
            f"labels has {count:,} items; the limit is {limits.max_labels:,} per request",
            code="too_many_labels",
            param="labels",
        )
    cleaned = clean_labels(labels)
    for i, label in enumerate(cleaned):
        check_text(label, field=f"labels[{i}]", limits=limits)
    return cleaned


def _label(score: Any) -> LabelScoreOut:
    return LabelScoreOut(label=score.label, probability=score.probability, score=score.score)


def _search_query(body: SearchRequest, pictures: list[Image.Image], limits: Limits) -> Query:
    """The query ``zsv search`` builds from the same words, images and ``--not`` texts."""
    from zeroshot_vision._query import compose

    if body.query is None and not body.images:
        raise InvalidInputError("give words to look for (query) or an image (images)")
    text = None
    if body.query is not None:
        if not body.query.strip():
            raise InvalidInputError("the query is empty; type some words to search for")
        text = check_text(body.query, field="query", limits=limits)
    for i, negative in enumerate(body.negative):
        check_text(negative, field=f"negative[{i}]", limits=limits)
    return compose(text, pictures, body.negative, image_weight=body.image_weight)
