"""The HTTP API of ``zsv serve``, as a FastAPI app: :func:`create_app`.

Routes (OpenAPI page at ``/docs``):

* ``POST /v1/embeddings``, ``GET /v1/models``: OpenAI-compatible; texts and images.
* ``POST /v1/search``, ``POST /v1/classify``, ``POST /v1/tag``: what ``zsv search``,
  ``zsv classify`` and ``zsv tag INDEX`` print, as JSON.
* ``GET /v1/indexes``, ``GET /v1/indexes/{name}``; with ``allow_writes``,
  ``POST /v1/indexes/{name}/records`` and ``DELETE /v1/indexes/{name}/records/{id}``.
* ``GET /v1/images/{id}``: the file of an indexed image, found from its stored metadata.
* ``GET /healthz``, ``GET /readyz``, ``GET /metrics`` (Prometheus).

Every error is answered in OpenAI's envelope, ``{"error": {"message", "type", "param",
"code"}}``, with a 4xx status for bad input; the server stays up whatever it is sent.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from zeroshot_vision._checks import clean_labels, label_parts
from zeroshot_vision._errors import (
    ImageLoadError,
    ImageTooLargeError,
    IndexLockedError,
    InvalidFilterError,
    InvalidInputError,
    InvalidMetadataError,
    RecordNotFoundError,
    ZeroshotVisionError,
)
from zeroshot_vision._text import is_utf8
from zeroshot_vision.server._batching import ServerBusyError
from zeroshot_vision.server._inputs import (
    DEFAULT_LIMITS,
    DecodeBudget,
    Limits,
    RequestTooLargeError,
    check_text,
    decoded_images,
    is_image_item,
)
from zeroshot_vision.server._metrics import CONTENT_TYPE, ServerMetrics
from zeroshot_vision.server._schemas import (
    ClassifyRequest,
    ClassifyResponse,
    DeleteResponse,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    ErrorEnvelope,
    ImageInput,
    ImageLabelsOut,
    IndexInfo,
    IndexList,
    LabelScoreOut,
    ModelCard,
    ModelList,
    MomentOut,
    SearchRequest,
    SearchResponse,
    SearchResultOut,
    TaggedImage,
    TagRequest,
    TagResponse,
    UpsertRequest,
    UpsertResponse,
)
from zeroshot_vision.server._security import ApiKey, BodyLimit, Guard

if TYPE_CHECKING:
    import numpy.typing as npt
    from PIL import Image

    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._query import Query
    from zeroshot_vision.server._service import ServedIndex, ServedModel, Service

__all__ = ["APIError", "ServerSettings", "create_app"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """How the app guards itself.

    Attributes:
        host: The address the server listens on (for the ``Host`` check).
        port: Its port (for the ``Host`` check).
        api_key: The bearer token every request must carry, or ``None``.
        limits: Request size limits.
        cors_origins: Origins allowed to call from a browser; none by default (CORS off).
        retry_after: Seconds a 503 (full queue) asks the client to wait.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: ApiKey | None = None
    limits: Limits = DEFAULT_LIMITS
    cors_origins: Sequence[str] = field(default_factory=tuple)
    retry_after: int = 1


class APIError(Exception):
    """An error to answer with ``status`` in OpenAI's envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        """The JSON response."""
        body = {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _as_api_error(exc: BaseException, retry_after: int) -> APIError:
    """The status and envelope for an error raised while answering."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, ServerBusyError):
        return APIError(
            503,
            str(exc),
            type="server_busy",
            code="queue_full",
            headers={"Retry-After": str(retry_after)},
        )
    if isinstance(exc, ImageTooLargeError):
        return APIError(400, str(exc), code="image_too_large", param=exc.source)
    if isinstance(exc, ImageLoadError):
        return APIError(400, str(exc), code="invalid_image", param=exc.source)
    if isinstance(exc, InvalidFilterError):
        return APIError(400, str(exc), code="invalid_filter", param="filter")
    if isinstance(exc, RequestTooLargeError):
        return APIError(413, str(exc), code="decoded_bytes_too_large", param=exc.param)
    if isinstance(exc, InvalidMetadataError):
        return APIError(400, str(exc), code="invalid_metadata", param="metadata")
    if isinstance(exc, InvalidInputError):
        return APIError(400, str(exc), code="invalid_value")
    if isinstance(exc, RecordNotFoundError):
        return APIError(404, str(exc), type="not_found_error", code="record_not_found")
    if isinstance(exc, IndexLockedError):
        return APIError(409, str(exc), type="conflict_error", code="index_locked")
    if isinstance(exc, ZeroshotVisionError):
        return APIError(500, str(exc), type="server_error", code="internal_error")
    logger.error("unexpected error while answering", exc_info=exc)
    return APIError(500, "the server failed to answer; see its log", type="server_error")


def _validation_error(exc: RequestValidationError) -> APIError:
    errors = exc.errors()
    first = errors[0] if errors else {}
    where = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(where) or None
    if first.get("type") == "json_invalid":
        return APIError(400, "the request body is not valid JSON", code="invalid_json")
    if not where and first.get("type") == "model_attributes_type":
        return APIError(
            400,
            "the request body must be a JSON object (Content-Type: application/json)",
            code="invalid_json",
        )
    message = str(first.get("msg", "invalid request"))
    kind = str(first.get("type", ""))
    code = {"missing": "missing_field", "extra_forbidden": "unknown_field"}.get(kind)
    if code is None:
        code = "invalid_type" if kind.endswith(("_type", "_parsing")) else "invalid_value"
    return APIError(400, f"{param}: {message}" if param else message, code=code, param=param)


def create_app(
    service: Service,
    *,
    settings: ServerSettings | None = None,
    metrics: ServerMetrics | None = None,
) -> FastAPI:
    """The ASGI app serving ``service``: FastAPI behind the ``Host``, key and size guards.

    Args:
        service: The loaded models and open indexes (the caller closes it).
        settings: Address, API key, limits and CORS.
        metrics: Where to count requests and batches (default: a fresh registry).

    Returns:
        The app; its ``state`` holds ``service``, ``settings`` and ``metrics``.
    """
    settings = settings or ServerSettings()
    metrics = metrics or ServerMetrics()
    limits = settings.limits
    api = FastAPI(
        title="zeroshot-vision",
        summary="Zero-shot image search, classification and embeddings with SigLIP.",
        version="1",
        responses={400: {"model": ErrorEnvelope}},
    )
    api.state.service = service
    api.state.settings = settings
    api.state.metrics = metrics
    budget = DecodeBudget(limits.max_decoded_bytes)
    api.state.decode_budget = budget

    def images_of(model: ServedModel, items: list[tuple[str, str]]) -> Any:
        """:func:`decoded_images` for ``model``, within the request's and server's budgets."""
        return decoded_images(
            items,
            draft_size=model.encoder.draft_size,
            spec=getattr(model.encoder, "pixel_spec", None),
            limits=limits,
            budget=budget,
        )

    @api.exception_handler(APIError)
    async def on_api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @api.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(exc).response()

    @api.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error"}
        # FastAPI answers 400 only when it cannot parse the body as JSON (RecursionError,
        # bytes that are not UTF-8, ...): all of them are the documented invalid_json.
        codes = {
            400: "invalid_json",
            404: "not_found",
            405: "method_not_allowed",
            413: "body_too_large",
        }
        return APIError(
            exc.status_code,
            str(exc.detail),
            type=kinds.get(exc.status_code, "invalid_request_error"),
            code=getattr(exc, "code", None) or codes.get(exc.status_code),
        ).response()

    @api.exception_handler(ZeroshotVisionError)
    async def on_library_error(request: Request, exc: ZeroshotVisionError) -> JSONResponse:
        return _as_api_error(exc, settings.retry_after).response()

    @api.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _as_api_error(exc, settings.retry_after).response()

    async def on_model(model: ServedModel, work: Callable[[], Any]) -> Any:
        """Run ``work`` in a thread once the model's queue has room for it, else 503."""
        try:
            with model.batcher.admit():
                return await run_in_threadpool(work)
        except BaseException as exc:
            raise _as_api_error(exc, settings.retry_after) from exc

    def find_model(name: str | None, param: str = "model") -> ServedModel:
        try:
            return service.model(name)
        except KeyError:
            names = ", ".join(m.name for m in service.models)
            raise APIError(
                404,
                f"the model {name!r} is not loaded on this server (loaded: {names})",
                type="not_found_error",
                code="model_not_found",
                param=param,
            ) from None

    def find_index(name: str | None) -> ServedIndex:
        try:
            return service.index(name)
        except KeyError:
            names = ", ".join(service.indexes) or "none"
            message = (
                f"no index named {name!r} on this server (indexes: {names})"
                if name is not None
                else f"name the index: this server has several ({names})"
            )
            raise APIError(
                404, message, type="not_found_error", code="index_not_found", param="index"
            ) from None

    # -- health ---------------------------------------------------------------------------

    @api.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Alive: the process answers HTTP (on the event loop: no worker thread needed)."""
        return {"status": "ok"}

    @api.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """Ready: the models are loaded and their threads run, the indexes are open."""
        ok = service.ready
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "models": len(service.models)},
            status_code=200 if ok else 503,
        )

    @api.get("/metrics", tags=["health"], response_class=Response)
    def prometheus() -> Response:
        """Requests, latencies, batch sizes and queue depth, in the Prometheus format."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    # -- OpenAI-compatible ----------------------------------------------------------------

    @api.get("/v1/models", tags=["openai"])
    def list_models() -> ModelList:
        """The loaded models (``model`` of ``/v1/embeddings`` takes a name or an alias)."""
        return ModelList(
            data=[
                ModelCard(id=m.name, created=m.created, dim=m.encoder.dim, aliases=m.aliases)
                for m in service.models
            ]
        )

    @api.post("/v1/embeddings", tags=["openai"])
    async def embeddings(body: EmbeddingRequest) -> EmbeddingResponse:
        """Unit vectors for texts and images, in input order (OpenAI's embeddings API)."""
        model = find_model(body.model)
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
                with images_of(model, [(f"input[{i}]", p) for i, p in pictures]) as images:
                    vectors[[i for i, _ in pictures]] = model.batcher.encode_images(
                        [_raised(im) for im in images]
                    )
            return vectors, len(texts) * model.text_tokens

        vectors, tokens = await on_model(model, work)
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

    # -- search, classify, tag ------------------------------------------------------------

    @api.post("/v1/search", tags=["search"])
    async def search(body: SearchRequest) -> SearchResponse:
        """The best matches for words, images, or both (``zsv search --json``'s fields)."""
        index = find_index(body.index)
        if isinstance(body.k, bool) or not 1 <= body.k <= limits.max_k:
            raise APIError(400, f"k must be from 1 to {limits.max_k}, got {body.k}", param="k")
        if len(body.images) > limits.max_inputs:
            raise APIError(400, "too many images", code="too_many_inputs", param="images")

        def work() -> SearchResponse:
            items = [(f"images[{i}]", item) for i, item in enumerate(body.images)]
            with images_of(index.model, items) as pictures, index.reading() as engine:
                query = _search_query(body, [_raised(im) for im in pictures], limits)
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

        response: SearchResponse = await on_model(index.model, work)
        return response

    @api.post("/v1/classify", tags=["search"])
    async def classify(body: ClassifyRequest) -> ClassifyResponse:
        """Each label's independent probability for each image (``zsv classify``).

        An image that cannot be read gets an ``error`` instead of labels; the others are
        answered all the same.
        """
        model = find_model(body.model)
        if not body.images:
            raise APIError(400, "images is empty; give at least one image", param="images")
        if len(body.images) > limits.max_inputs:
            raise APIError(400, "too many images", code="too_many_inputs", param="images")

        def work() -> ClassifyResponse:
            labels = _checked_labels(body.labels, limits)
            decoded: list[tuple[int, Image.Image]] = []
            results: list[ImageLabelsOut] = []
            items = [(f"images[{i}]", item) for i, item in enumerate(body.images)]
            with images_of(model, items) as pictures:
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

        response: ClassifyResponse = await on_model(model, work)
        return response

    @api.post("/v1/tag", tags=["search"])
    async def tag(body: TagRequest) -> TagResponse:
        """Every stored image's labels, from its stored vector (``zsv tag INDEX``)."""
        index = find_index(body.index)

        def work() -> TagResponse:
            labels = _checked_labels(body.labels, limits)
            with index.reading() as engine:
                report = engine.classify_indexed(labels)
            return TagResponse(
                index=index.name,
                results=[
                    TaggedImage(image=r.source, labels=[_label(s) for s in r.labels])
                    for r in report.results
                ],
            )

        response: TagResponse = await on_model(index.model, work)
        return response

    # -- indexes --------------------------------------------------------------------------

    def describe(index: ServedIndex) -> IndexInfo:
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

    @api.get("/v1/indexes", tags=["indexes"])
    def list_indexes() -> IndexList:
        """The indexes this server searches."""
        return IndexList(data=[describe(index) for index in service.indexes.values()])

    @api.get("/v1/indexes/{name}", tags=["indexes"])
    def index_info(name: str) -> IndexInfo:
        """An index's record count, model and store."""
        return describe(find_index(name))

    def writable(name: str) -> ServedIndex:
        index = find_index(name)
        if not index.writable:
            raise APIError(
                403,
                "this server does not change its indexes (start it with --allow-writes)",
                type="permission_error",
                code="writes_not_allowed",
            )
        return index

    @api.post("/v1/indexes/{name}/records", tags=["indexes"])
    async def upsert(name: str, body: UpsertRequest) -> UpsertResponse:
        """Add an image (or replace the record of its id), with its metadata."""
        index = writable(name)
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
            with images_of(index.model, [("image", body.image)]) as (picture,):
                image = _raised(picture)

                def change(engine: SearchEngine) -> int:
                    report = engine.index_images([image], ids=[body.id], metadata=[body.metadata])
                    if report.failed:
                        raise ImageLoadError("image", report.failed[0].reason)
                    return len(engine.store)

                count = index.write(change)
            return UpsertResponse(index=index.name, id=body.id, count=count)

        response: UpsertResponse = await on_model(index.model, work)
        return response

    @api.delete("/v1/indexes/{name}/records/{record_id:path}", tags=["indexes"])
    async def delete(name: str, record_id: str) -> DeleteResponse:
        """Remove a record; removing one that is not stored is not an error."""
        index = writable(name)

        def work() -> DeleteResponse:
            def change(engine: SearchEngine) -> tuple[bool, int]:
                present = record_id in engine.store.fetch([record_id])
                if present:
                    engine.writer.delete([record_id])
                return present, len(engine.store)

            deleted, count = index.write(change)
            return DeleteResponse(index=index.name, id=record_id, deleted=deleted, count=count)

        response: DeleteResponse = await on_model(index.model, work)
        return response

    @api.get("/v1/images/{image_id:path}", tags=["indexes"], response_class=FileResponse)
    def image(image_id: str, index: str | None = None) -> FileResponse:
        """The file of an indexed image: only an image file that the index's metadata names,
        under the index's source folders, is served."""
        from zeroshot_vision._index.serving import servable_image

        served = find_index(index)
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

    from zeroshot_vision.server._ask_routes import router as ask_router

    api.include_router(ask_router)

    # The last added runs first: CORS (answers browsers' preflights, which carry no
    # key), then the Host and key check, then the body limit.
    api.add_middleware(_Counted, metrics=metrics)
    api.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes, max_depth=limits.max_json_depth)
    api.add_middleware(
        Guard, served=lambda: (settings.host, settings.port), api_key=settings.api_key
    )
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        api.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return api


class _Counted:
    """ASGI middleware: count each request and time it, by route template."""

    def __init__(self, app: Any, *, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watching(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watching)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(route, status, time.perf_counter() - started)


def _image_of(item: object) -> str | None:
    """The image payload of an ``input`` item, or ``None`` for a text."""
    if isinstance(item, str):
        return item if is_image_item(item) else None
    if isinstance(item, ImageInput):
        return item.image
    return item.image_url.url  # type: ignore[attr-defined, no-any-return]


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


def _raised(image: Image.Image | ImageLoadError) -> Image.Image:
    """The image, or its error raised (for routes where one bad image fails the request)."""
    if isinstance(image, ImageLoadError):
        raise image
    return image


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
