"""``POST /v1/search``, ``/v1/classify`` and ``/v1/tag``: what ``zsv search``,
``zsv classify`` and ``zsv tag INDEX`` print, as JSON.

All three write their answers with orjson on the worker thread that computed them
(:func:`search_document`, :func:`classify_document`, :func:`tag_document`,
:func:`json_body`) instead of building pydantic models that FastAPI then validates and
encodes again on the event loop; the documents are the ones :class:`SearchResponse`,
:class:`ClassifyResponse` and :class:`TagResponse` describe (``response_model`` keeps them
in the OpenAPI schema, and tests/server/test_server_routes.py parses each answer back into
its model).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Response

from zeroshot_vision._checks import clean_labels, label_parts
from zeroshot_vision._errors import ImageLoadError, InvalidInputError
from zeroshot_vision._optional import require
from zeroshot_vision.server._context import APIError, ServerContext, context, raised
from zeroshot_vision.server._inputs import Limits, check_text
from zeroshot_vision.server._schemas import (
    ClassifyRequest,
    ClassifyResponse,
    SearchRequest,
    SearchResponse,
    TagRequest,
    TagResponse,
)

if TYPE_CHECKING:
    from PIL import Image

    from zeroshot_vision._query import Query
    from zeroshot_vision._results import SearchResults
    from zeroshot_vision._types import ClassifyReport

__all__ = [
    "classify",
    "classify_document",
    "json_body",
    "router",
    "search",
    "search_document",
    "tag",
    "tag_document",
]

router = APIRouter(tags=["search"])

Context = Annotated[ServerContext, Depends(context)]


@router.post("/v1/search", response_model=SearchResponse)
async def search(body: SearchRequest, ctx: Context) -> Response:
    """The best matches for words, images, or both (``zsv search --json``'s fields)."""
    limits = ctx.limits
    index = ctx.find_index(body.index)
    if isinstance(body.k, bool) or not 1 <= body.k <= limits.max_k:
        raise APIError(400, f"k must be from 1 to {limits.max_k}, got {body.k}", param="k")
    if len(body.images) > limits.max_inputs:
        raise APIError(400, "too many images", code="too_many_inputs", param="images")

    def work() -> bytes:
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
        return json_body(search_document(index.name, str(query), results))

    data: bytes = await ctx.on_model(index.model, work)
    return Response(data, media_type="application/json")


@router.post("/v1/classify", response_model=ClassifyResponse)
async def classify(body: ClassifyRequest, ctx: Context) -> Response:
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

    def work() -> bytes:
        labels = _checked_labels(body.labels, limits)
        decoded: list[tuple[int, Image.Image]] = []
        unread: dict[int, str] = {}
        items = [(f"images[{i}]", item) for i, item in enumerate(body.images)]
        with ctx.images_of(model, items) as pictures:
            for i, picture in enumerate(pictures):
                if isinstance(picture, ImageLoadError):
                    unread[i] = picture.reason
                else:
                    decoded.append((i, picture))
            text_vectors = model.batcher.encode_texts(labels)
            image_vectors = model.batcher.encode_images([im for _, im in decoded])
        scored = model.encoder.score_labels(
            labels, text_vectors, image_vectors, softmax=body.softmax
        )
        labelled = {i: scores for (i, _), scores in zip(decoded, scored)}
        return json_body(classify_document(model.name, len(body.images), labelled, unread))

    data: bytes = await ctx.on_model(model, work)
    return Response(data, media_type="application/json")


def _number(value: Any) -> float | None:
    """A score as JSON has it: a float, ``None`` for none (and for NaN or infinity,
    which JSON cannot write; pydantic writes those as ``null`` too)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def search_document(index: str, query: str, results: SearchResults) -> dict[str, Any]:
    """The :class:`SearchResponse` document of ``results``, as plain data.

    As ``zsv search --json`` (and :class:`SearchResultOut`'s serializer): a photo's row has
    no ``timestamp``, an ungrouped one no ``moments``.
    """
    rows = []
    for rank, r in enumerate(results, start=1):
        row: dict[str, Any] = {
            "rank": rank,
            "id": str(r.id),
            "score": _number(r.score),
            "probability": _number(r.probability),
            "metadata": dict(r.metadata),
            "found_by": [str(side) for side in r.found_by],
            "snippet": r.snippet,
            "fused_score": _number(r.fused_score),
        }
        if r.timestamp is not None:
            row["timestamp"] = _number(r.timestamp)
        if r.moments:
            row["moments"] = [
                {
                    "id": str(m.id),
                    "score": _number(m.score),
                    "probability": _number(m.probability),
                    "timestamp": _number(m.timestamp),
                }
                for m in r.moments
            ]
        rows.append(row)
    return {
        "index": index,
        "query": query,
        "results": rows,
        "warnings": [str(w) for w in results.warnings],
    }


def classify_document(
    model: str, count: int, labelled: dict[int, list[Any]], unread: dict[int, str]
) -> dict[str, Any]:
    """The :class:`ClassifyResponse` document: for each of ``count`` images in input order,
    its label scores (``labelled``) or why it could not be read (``unread``)."""
    results: list[dict[str, Any]] = []
    for i in range(count):
        if i in unread:
            results.append({"index": i, "labels": None, "error": unread[i]})
        else:
            results.append(
                {"index": i, "labels": [_label_entry(s) for s in labelled[i]], "error": None}
            )
    return {"model": model, "results": results}


def _label_entry(score: Any) -> dict[str, Any]:
    return {
        "label": str(score.label),
        "probability": _number(score.probability),
        "score": _number(score.score),
    }


def json_body(document: dict[str, Any]) -> bytes:
    """``document`` as JSON bytes, as pydantic would write it, through orjson.

    Metadata may hold what orjson does not write itself (bytes, a set, a decimal):
    pydantic's own conversion (``to_jsonable_python``) writes those. Datetimes in UTC end
    in ``Z``, as pydantic writes them.
    """
    orjson = require("orjson", extra="server", purpose="zsv serve")
    from pydantic_core import to_jsonable_python

    options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z
    data: bytes = orjson.dumps(document, default=to_jsonable_python, option=options)
    return data


@router.post("/v1/tag", response_model=TagResponse)
async def tag(body: TagRequest, ctx: Context) -> Response:
    """Every stored image's labels, from its stored vector (``zsv tag INDEX``)."""
    index = ctx.find_index(body.index)

    def work() -> bytes:
        labels = _checked_labels(body.labels, ctx.limits)
        with index.reading() as engine:
            report = engine.classify_indexed(labels)
        return json_body(tag_document(index.name, report))

    data: bytes = await ctx.on_model(index.model, work)
    return Response(data, media_type="application/json")


def tag_document(index: str, report: ClassifyReport) -> dict[str, Any]:
    """The :class:`TagResponse` document of ``report``: each stored image with all its
    labels, most likely first, as plain data."""
    return {
        "index": index,
        "results": [
            {"image": str(r.source), "labels": [_label_entry(s) for s in r.labels]}
            for r in report.results
        ],
    }


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
