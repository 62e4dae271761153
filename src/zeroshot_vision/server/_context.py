"""What every route of the server shares: the error envelope and the request context.

:class:`APIError` is an error answered in OpenAI's envelope; :func:`as_api_error` maps the
library's errors to it. :class:`ServerContext` holds the service, settings, metrics and
decode budget of one app (kept on ``app.state.context``, no globals); routers reach it
through the :func:`context` dependency.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

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
from zeroshot_vision.server._batching import ServerBusyError
from zeroshot_vision.server._inputs import (
    DEFAULT_LIMITS,
    DecodeBudget,
    Limits,
    RequestTooLargeError,
    decoded_images,
)
from zeroshot_vision.server._security import ApiKey

if TYPE_CHECKING:
    from PIL import Image

    from zeroshot_vision.server._metrics import ServerMetrics
    from zeroshot_vision.server._service import ServedIndex, ServedModel, Service

__all__ = [
    "APIError",
    "ServerContext",
    "ServerSettings",
    "as_api_error",
    "context",
    "raised",
    "validation_error",
]

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


def as_api_error(exc: BaseException, retry_after: int) -> APIError:
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


def validation_error(exc: RequestValidationError) -> APIError:
    """The envelope for a body that FastAPI could not validate against its schema."""
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


@dataclass(frozen=True, kw_only=True)
class ServerContext:
    """One app's shared state: what its routes look models and indexes up in.

    Attributes:
        service: The loaded models and open indexes.
        settings: Address, API key, limits and CORS.
        metrics: Where requests and batches are counted.
        budget: The server-wide budget of decoded image bytes.
    """

    service: Service
    settings: ServerSettings
    metrics: ServerMetrics
    budget: DecodeBudget

    @property
    def limits(self) -> Limits:
        """The request size limits."""
        return self.settings.limits

    def images_of(self, model: ServedModel, items: list[tuple[str, str]]) -> Any:
        """:func:`decoded_images` for ``model``, within the request's and server's budgets."""
        return decoded_images(
            items,
            draft_size=model.encoder.draft_size,
            spec=getattr(model.encoder, "pixel_spec", None),
            limits=self.limits,
            budget=self.budget,
        )

    async def on_model(self, model: ServedModel, work: Callable[[], Any]) -> Any:
        """Run ``work`` in a thread once the model's queue has room for it, else 503."""
        try:
            with model.batcher.admit():
                return await run_in_threadpool(work)
        except BaseException as exc:
            raise as_api_error(exc, self.settings.retry_after) from exc

    async def on_batcher(
        self, model: ServedModel, kind: Literal["text", "image"], items: list[Any]
    ) -> Any:
        """Queue ``items`` on the model's batcher straight from the event loop and await
        their vectors, else 503.

        :meth:`on_model` hops to a worker thread that then waits on the model thread; for
        work that is only the batcher's, this skips the worker thread (two thread switches
        and a thread held per request). The queued job is shielded: a client that goes
        away does not cancel it under the model thread, which answers it anyway.
        """
        try:
            with model.batcher.admit():
                future = model.batcher.submit(kind, items)
                return await asyncio.shield(asyncio.wrap_future(future))
        except BaseException as exc:
            raise as_api_error(exc, self.settings.retry_after) from exc

    def find_model(self, name: str | None, param: str = "model") -> ServedModel:
        """The loaded model called ``name`` (or the default), else a 404."""
        try:
            return self.service.model(name)
        except KeyError:
            names = ", ".join(m.name for m in self.service.models)
            raise APIError(
                404,
                f"the model {name!r} is not loaded on this server (loaded: {names})",
                type="not_found_error",
                code="model_not_found",
                param=param,
            ) from None

    def find_index(self, name: str | None) -> ServedIndex:
        """The open index called ``name`` (or the only one), else a 404."""
        try:
            return self.service.index(name)
        except KeyError:
            names = ", ".join(self.service.indexes) or "none"
            message = (
                f"no index named {name!r} on this server (indexes: {names})"
                if name is not None
                else f"name the index: this server has several ({names})"
            )
            raise APIError(
                404, message, type="not_found_error", code="index_not_found", param="index"
            ) from None


async def context(request: Request) -> ServerContext:
    """The FastAPI dependency for the app's :class:`ServerContext`.

    A coroutine, so FastAPI calls it on the event loop: a plain function would be sent to
    a worker thread and back on every request, for one attribute lookup.
    """
    found: ServerContext = request.app.state.context
    return found


def raised(image: Image.Image | ImageLoadError) -> Image.Image:
    """The image, or its error raised (for routes where one bad image fails the request)."""
    if isinstance(image, ImageLoadError):
        raise image
    return image
