"""``GET /v1/models`` and ``POST /v1/embeddings``: OpenAI's embeddings API, for texts and images."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Annotated

import numpy as np
from fastapi import APIRouter, Depends

from zeroshot_vision.server._context import APIError, ServerContext, context, raised
from zeroshot_vision.server._inputs import check_text, is_image_item
from zeroshot_vision.server._schemas import (
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    ImageInput,
    ModelCard,
    ModelList,
)

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["embeddings", "list_models", "router"]

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


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, ctx: Context) -> EmbeddingResponse:
    """Unit vectors for texts and images, in input order (OpenAI's embeddings API)."""
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

    def work() -> tuple[npt.NDArray[np.float32], int]:
        texts: list[tuple[int, str]] = []
        pictures: list[tuple[int, str]] = []
        for i, item in enumerate(items):
            where = f"input[{i}]"
            picture = _image_of(item)
            if picture is None:
                texts.append((i, check_text(str(item), field=where, limits=limits)))
            else:
                pictures.append((i, picture))
        vectors = np.zeros((len(items), model.encoder.dim), np.float32)
        if texts:
            vectors[[i for i, _ in texts]] = model.batcher.encode_texts([t for _, t in texts])
        if pictures:
            with ctx.images_of(model, [(f"input[{i}]", p) for i, p in pictures]) as images:
                vectors[[i for i, _ in pictures]] = model.batcher.encode_images(
                    [raised(im) for im in images]
                )
        return vectors, len(texts) * model.text_tokens

    vectors, tokens = await ctx.on_model(model, work)
    if body.encoding_format == "base64":
        data = [
            Embedding(index=i, embedding=base64.b64encode(v.astype("<f4").tobytes()).decode())
            for i, v in enumerate(vectors)
        ]
    else:
        data = [Embedding(index=i, embedding=v.tolist()) for i, v in enumerate(vectors)]
    return EmbeddingResponse(
        data=data,
        model=model.name,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )


def _image_of(item: object) -> str | None:
    """The image payload of an ``input`` item, or ``None`` for a text."""
    if isinstance(item, str):
        return item if is_image_item(item) else None
    if isinstance(item, ImageInput):
        return item.image
    return item.image_url.url  # type: ignore[attr-defined, no-any-return]
