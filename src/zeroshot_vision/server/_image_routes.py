"""``GET /v1/images/{id}``: the file of an indexed image, found from its stored metadata."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from zeroshot_vision.server._context import APIError, ServerContext, context

__all__ = ["image", "router"]

router = APIRouter(tags=["indexes"])

Context = Annotated[ServerContext, Depends(context)]


@router.get("/v1/images/{image_id:path}", response_class=FileResponse)
def image(image_id: str, ctx: Context, index: str | None = None) -> FileResponse:
    """The file of an indexed image: only an image file that the index's metadata names,
    under the index's source folders, is served."""
    from zeroshot_vision._index.serving import servable_image

    served = ctx.find_index(index)
    with served.reading() as engine:
        record = engine.store.fetch([image_id]).get(image_id) if image_id else None
        stored = record.metadata.get("path") if record is not None else None
        path = servable_image(stored, engine.folder)
    if path is None:
        raise APIError(
            404,
            f"no image file for id {image_id!r} in index {served.name!r}",
            type="not_found_error",
            code="image_not_found",
        )
    return FileResponse(path, headers={"X-Content-Type-Options": "nosniff"})
