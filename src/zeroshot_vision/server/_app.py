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

import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from zeroshot_vision._errors import ZeroshotVisionError
from zeroshot_vision.server import (
    _ask_routes as ask_routes,
)
from zeroshot_vision.server import (
    _health_routes as health_routes,
)
from zeroshot_vision.server import (
    _image_routes as image_routes,
)
from zeroshot_vision.server import (
    _index_routes as index_routes,
)
from zeroshot_vision.server import (
    _openai_routes as openai_routes,
)
from zeroshot_vision.server import (
    _search_routes as search_routes,
)
from zeroshot_vision.server._context import (
    APIError,
    ServerContext,
    ServerSettings,
    as_api_error,
    validation_error,
)
from zeroshot_vision.server._inputs import DecodeBudget
from zeroshot_vision.server._metrics import ServerMetrics
from zeroshot_vision.server._schemas import ErrorEnvelope
from zeroshot_vision.server._security import BodyLimit, Guard

if TYPE_CHECKING:
    from zeroshot_vision.server._service import Service

__all__ = ["APIError", "ServerSettings", "create_app"]

# One router per resource, in the order their routes were always matched.
_ROUTERS = (
    health_routes.router,
    openai_routes.router,
    search_routes.router,
    index_routes.router,
    image_routes.router,
    ask_routes.router,
)


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
        The app; its ``state`` holds ``service``, ``settings`` and ``metrics``, and the
        :class:`~zeroshot_vision.server._context.ServerContext` its routes share.
    """
    settings = settings or ServerSettings()
    metrics = metrics or ServerMetrics()
    api = FastAPI(
        title="zeroshot-vision",
        summary="Zero-shot image search, classification and embeddings with SigLIP.",
        version="1",
        responses={400: {"model": ErrorEnvelope}},
    )
    budget = DecodeBudget(settings.limits.max_decoded_bytes)
    api.state.service = service
    api.state.settings = settings
    api.state.metrics = metrics
    api.state.decode_budget = budget
    api.state.context = ServerContext(
        service=service, settings=settings, metrics=metrics, budget=budget
    )
    _add_error_handlers(api, settings.retry_after)
    for router in _ROUTERS:
        api.include_router(router)
    _add_middleware(api, settings, metrics)
    return api


def _add_error_handlers(api: FastAPI, retry_after: int) -> None:
    """Answer every error in OpenAI's envelope."""

    @api.exception_handler(APIError)
    async def on_api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @api.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc).response()

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
        return as_api_error(exc, retry_after).response()

    @api.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return as_api_error(exc, retry_after).response()


def _add_middleware(api: FastAPI, settings: ServerSettings, metrics: ServerMetrics) -> None:
    """The guards around the routes.

    The last added runs first: CORS (answers browsers' preflights, which carry no key),
    then the Host and key check, then the body limit.
    """
    limits = settings.limits
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
