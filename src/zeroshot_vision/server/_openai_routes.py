"""``GET /v1/models`` and ``POST /v1/embeddings``: OpenAI's embeddings API, for texts and images."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Response

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._optional import require
from zeroshot_vision.server._context import (
    APIError,
    ServerContext,
    as_api_error,
    context,
    raised,
)
from zeroshot_vision.server._inputs import Limits, check_text, is_image_item
from zeroshot_vision.server._schemas import (
    EmbeddingRequest,
    EmbeddingResponse,
    ImageInput,
    ModelCard,
    ModelList,
)

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["embedding_json", "embeddings", "list_models", "router"]

router = APIRouter(tags=["openai"])

Context = Annotated[ServerContext, Depends(context)]


@router.get("/v1/models")
def list_models(ctx: Context) -> ModelList:
    """The loaded models (``model`` of ``/v1/embeddings`` takes a name or an alias)."""
    return ModelList(
        data=[
            ModelCard(id=m.name, created=m.created, dim=m.encoder.dim, aliases=m.aliases)
            for m in ctx.service.models
        ]
    )


@router.post("/v1/embeddings", response_model=EmbeddingResponse)
async def embeddings(body: EmbeddingRequest, ctx: Context) -> Response:
    """Unit vectors for texts and images, in input order (OpenAI's embeddings API).

    A request of texts only is queued on the model's batcher from the event loop (no
    worker thread), and every answer is written by :func:`embedding_json` (one C call for
    the numbers) instead of being validated and serialized number by number.
    """
    limits = ctx.limits
    model = ctx.find_model(body.model)
    items = [body.input] if isinstance(body.input, str) else body.input
    if not items:
        raise APIError(400, "input is empty; give at least one item", param="input")
    if len(items) > limits.max_inputs:
        raise APIError(
            400,
            f"input has {len(items):,} items; the limit is {limits.max_inputs:,} per request",
            code="too_many_inputs",
            param="input",
        )
    if body.dimensions is not None and body.dimensions != model.encoder.dim:
        raise APIError(
            400,
            f"this model makes {model.encoder.dim}-d vectors; dimensions cannot be changed",
            param="dimensions",
        )
    pictures = [
        (i, found) for i, item in enumerate(items) if (found := _image_of(item)) is not None
    ]

    def work() -> tuple[npt.NDArray[np.float32], int]:
        texts = _checked_texts(items, {i for i, _ in pictures}, limits)
        vectors = np.zeros((len(items), model.encoder.dim), np.float32)
        if texts:
            vectors[[i for i, _ in texts]] = model.batcher.encode_texts([t for _, t in texts])
        with ctx.images_of(model, [(f"input[{i}]", p) for i, p in pictures]) as images:
            vectors[[i for i, _ in pictures]] = model.batcher.encode_images(
                [raised(im) for im in images]
            )
        return vectors, len(texts) * model.text_tokens

    if pictures:
        vectors, tokens = await ctx.on_model(model, work)
    else:
        try:
            texts = [text for _, text in _checked_texts(items, set(), limits)]
        except InvalidInputError as exc:
            raise as_api_error(exc, ctx.settings.retry_after) from exc
        vectors = await ctx.on_batcher(model, "text", texts)
        tokens = len(texts) * model.text_tokens
    return Response(
        embedding_json(vectors, model=model.name, tokens=tokens, encoding=body.encoding_format),
        media_type="application/json",
    )


def _checked_texts(items: list[Any], images: set[int], limits: Limits) -> list[tuple[int, str]]:
    """The text items (position and text) that are not ``images``, each checked."""
    return [
        (i, check_text(str(item), field=f"input[{i}]", limits=limits))
        for i, item in enumerate(items)
        if i not in images
    ]


def embedding_json(
    vectors: npt.NDArray[np.float32], *, model: str, tokens: int, encoding: str
) -> bytes:
    """The body of an :class:`EmbeddingResponse` for ``vectors`` (one row per input).

    The same document the pydantic model would write, without its cost: Python's json
    writes a 768-float vector in about 2 ms (each float through ``repr``), orjson in
    about 0.1 ms, with the same shortest round-trip digits of each float64 value (the
    float32 vectors are widened first, as ``ndarray.tolist`` widens them). ``base64``:
    little-endian float32 bytes per vector.
    """
    orjson = require("orjson", extra="server", purpose="zsv serve")
    if encoding == "base64":
        rows: list[Any] = [
            base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in vectors
        ]
    else:
        rows = list(vectors.astype(np.float64))
    document = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    data: bytes = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    return data


def _image_of(item: object) -> str | None:
    """The image payload of an ``input`` item, or ``None`` for a text."""
    if isinstance(item, str):
        return item if is_image_item(item) else None
    if isinstance(item, ImageInput):
        return item.image
    return item.image_url.url  # type: ignore[attr-defined, no-any-return]
