"""``/v1/indexes``: list the indexes, describe one, and (with ``allow_writes``) upsert or
delete its records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends

from zeroshot_vision._errors import ImageLoadError
from zeroshot_vision._text import is_utf8
from zeroshot_vision.server._context import APIError, ServerContext, context, raised
from zeroshot_vision.server._schemas import (
    DeleteResponse,
    IndexInfo,
    IndexList,
    UpsertRequest,
    UpsertResponse,
)

if TYPE_CHECKING:
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision.server._service import ServedIndex

__all__ = ["delete", "index_info", "list_indexes", "router", "upsert"]

router = APIRouter(tags=["indexes"])

Context = Annotated[ServerContext, Depends(context)]


@router.get("/v1/indexes")
def list_indexes(ctx: Context) -> IndexList:
    """The indexes this server searches."""
    return IndexList(data=[_describe(index) for index in ctx.service.indexes.values()])


@router.get("/v1/indexes/{name}")
def index_info(name: str, ctx: Context) -> IndexInfo:
    """An index's record count, model and store."""
    return _describe(ctx.find_index(name))


@router.post("/v1/indexes/{name}/records")
async def upsert(name: str, body: UpsertRequest, ctx: Context) -> UpsertResponse:
    """Add an image (or replace the record of its id), with its metadata."""
    index = _writable(ctx, name)
    if not body.id.strip():
        raise APIError(400, "id is empty", param="id")
    if not is_utf8(body.id):
        raise APIError(
            400,
            "id is not valid UTF-8 text (it holds a lone surrogate)",
            code="invalid_value",
            param="id",
        )
    if "path" in body.metadata:
        raise APIError(
            400, "metadata may not name a path: the server stores no file", param="metadata"
        )

    def work() -> UpsertResponse:
        with ctx.images_of(index.model, [("image", body.image)]) as (picture,):
            image = raised(picture)

            def change(engine: SearchEngine) -> int:
                report = engine.index_images([image], ids=[body.id], metadata=[body.metadata])
                if report.failed:
                    raise ImageLoadError("image", report.failed[0].reason)
                return len(engine.store)

            count = index.write(change)
        return UpsertResponse(index=index.name, id=body.id, count=count)

    response: UpsertResponse = await ctx.on_model(index.model, work)
    return response


@router.delete("/v1/indexes/{name}/records/{record_id:path}")
async def delete(name: str, record_id: str, ctx: Context) -> DeleteResponse:
    """Remove a record; removing one that is not stored is not an error."""
    index = _writable(ctx, name)

    def work() -> DeleteResponse:
        def change(engine: SearchEngine) -> tuple[bool, int]:
            present = record_id in engine.store.fetch([record_id])
            if present:
                engine.writer.delete([record_id])
            return present, len(engine.store)

        deleted, count = index.write(change)
        return DeleteResponse(index=index.name, id=record_id, deleted=deleted, count=count)

    response: DeleteResponse = await ctx.on_model(index.model, work)
    return response


def _describe(index: ServedIndex) -> IndexInfo:
    with index.reading() as engine:
        folder = engine.folder
        return IndexInfo(
            name=index.name,
            count=len(engine.store),
            model=folder.manifest.model if folder is not None else index.model.name,
            dim=engine.store.dim,
            store=folder.manifest.store.kind if folder is not None else "memory",
            writable=index.writable,
        )


def _writable(ctx: ServerContext, name: str) -> ServedIndex:
    index = ctx.find_index(name)
    if not index.writable:
        raise APIError(
            403,
            "this server does not change its indexes (start it with --allow-writes)",
            type="permission_error",
            code="writes_not_allowed",
        )
    return index
