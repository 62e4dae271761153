"""``POST /v1/ask``: a question answered by a vision-language model from an index's photos.

The server asks the chat endpoint it is configured with, never one a request names (a
request could otherwise make it call any URL): ``OPENAI_BASE_URL``, ``OPENAI_API_KEY`` and
``ZSV_LLM_MODEL`` in the server's environment, or an
:class:`~zeroshot_vision._llm.LLMEndpoint` set as ``app.state.ask_llm``. A request may pick
another ``model`` of that endpoint.

With ``"stream": true`` the answer comes as server-sent events: ``event: delta`` with
``{"text": ...}`` as the model writes, then ``event: answer`` with the whole answer (the
JSON of a non-streamed reply), or ``event: error`` with an error envelope if the model
fails midway. Behind the same key, host check and size limit as every route.

Upstream failures are not the client's: the endpoint down, a refused server key or a
5xx answer 502 (``code`` ``llm_unreachable``, ``llm_auth``, ``llm_error``), a timeout 504;
an unknown ``model`` 404 (``llm_model_not_found``), images refused 400.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from zeroshot_vision._errors import (
    LLMAuthError,
    LLMError,
    LLMImagesRejectedError,
    LLMModelNotFoundError,
    LLMResponseError,
    LLMTimeoutError,
    LLMUnreachableError,
)

__all__ = ["AskRequest", "ask", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["ask"])

MAX_IMAGES = 16
MAX_IMAGE_SIDE = 2048


class AskRequest(BaseModel):
    """The body of ``POST /v1/ask`` (the arguments of ``engine.ask``)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(description="The question, in words.")
    index: str | None = Field(None, description="The index; may be left out when there is one.")
    k: int = Field(4, ge=1, le=100, description="Photos to retrieve.")
    filter: dict[str, Any] | None = Field(None, description="A metadata filter.")
    min_probability: float | None = Field(0.001, ge=0, le=1)
    max_images: int = Field(4, ge=0, le=MAX_IMAGES, description="0: descriptions only.")
    image_side: int = Field(768, ge=32, le=MAX_IMAGE_SIDE)
    answer_without_photos: bool = False
    model: str | None = Field(None, description="Another model of the server's endpoint.")
    stream: bool = False


def _endpoint(request: Request, model: str | None) -> Any:
    from zeroshot_vision._llm import LLMEndpoint

    state = request.app.state
    configured: LLMEndpoint | None = getattr(state, "ask_llm", None)
    if configured is None:
        configured = LLMEndpoint()
        state.ask_llm = configured
    if model is None or model == configured.model:
        return configured
    return configured.with_model(model)


def _release(request: Request, llm: Any) -> None:
    """Close an endpoint made for one request (not the app's own)."""
    if llm is not getattr(request.app.state, "ask_llm", None):
        llm.close()


def _envelope(status: int, message: str, code: str, param: str | None = None) -> JSONResponse:
    kind = (
        "not_found_error"
        if status == 404
        else "invalid_request_error"
        if status < 500
        else "upstream_error"
    )
    return JSONResponse(
        {"error": {"message": message, "type": kind, "code": code, "param": param}},
        status_code=status,
    )


def _llm_error(exc: LLMError) -> JSONResponse:
    """The status and OpenAI-style envelope for the model's failure.

    Other errors (bad input, a bad filter) are raised to the app's own handlers, which
    answer them as every route does.
    """
    status, code = 502, "llm_error"
    if isinstance(exc, LLMTimeoutError):
        status, code = 504, "llm_timeout"
    elif isinstance(exc, LLMUnreachableError):
        code = "llm_unreachable"
    elif isinstance(exc, LLMAuthError):
        code = "llm_auth"  # the server's key for its endpoint, not the client's
    elif isinstance(exc, LLMModelNotFoundError):
        status, code = 404, "llm_model_not_found"
    elif isinstance(exc, LLMImagesRejectedError):
        status, code = 400, "llm_rejects_images"
    return _envelope(status, str(exc), code, "model" if status == 404 else None)


def _options(body: AskRequest) -> dict[str, Any]:
    return {
        "k": body.k,
        "filter": body.filter,
        "min_probability": body.min_probability,
        "max_images": body.max_images,
        "image_side": body.image_side,
        "answer_without_photos": body.answer_without_photos,
    }


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


@router.post("/v1/ask")
async def ask(body: AskRequest, request: Request) -> Any:
    """Answer a question from an index's photos, citing them (``engine.ask``)."""
    service = request.app.state.service
    try:
        index = service.index(body.index)
    except KeyError:
        names = ", ".join(service.indexes) or "none"
        return _envelope(
            404, f"no index named {body.index!r} on this server (indexes: {names})",
            "index_not_found", "index",
        )  # fmt: skip
    max_chars = request.app.state.settings.limits.max_text_chars
    if len(body.question) > max_chars:
        return _envelope(
            400, f"question is {len(body.question):,} characters; the limit is {max_chars:,}",
            "text_too_long", "question",
        )  # fmt: skip
    options = _options(body)

    if not body.stream:

        def work() -> dict[str, Any]:
            llm = _endpoint(request, body.model)
            try:
                with index.reading() as engine:
                    return dict(engine.ask(body.question, llm=llm, **options).to_dict())
            finally:
                _release(request, llm)

        try:
            return JSONResponse(await run_in_threadpool(work))
        except LLMError as exc:
            return _llm_error(exc)

    # Streamed: check the request (and retrieve) before the 200 goes out, so bad input
    # still gets its status code; the model's failures midway become an error event.
    def first_parts() -> tuple[Iterator[Any], Any, Any, Any]:
        llm = _endpoint(request, body.model)
        reading = index.reading()
        engine = reading.__enter__()
        try:
            parts = engine.ask_stream(body.question, llm=llm, **options)
            return parts, next(parts), reading, llm
        except BaseException:
            reading.__exit__(None, None, None)
            _release(request, llm)
            raise

    try:
        parts, first, reading, llm = await run_in_threadpool(first_parts)
    except LLMError as exc:
        return _llm_error(exc)

    def events() -> Iterator[bytes]:
        try:
            for part in _chain(first, parts):
                if isinstance(part, str):
                    yield _event("delta", {"text": part})
                else:
                    yield _event("answer", part.to_dict())
        except Exception as exc:  # the status is sent: report in-band
            if isinstance(exc, LLMError):
                envelope = json.loads(bytes(_llm_error(exc).body))
            else:
                logger.error("ask failed while streaming", exc_info=exc)
                message = "the server failed to answer; see its log"
                envelope = {"error": {"message": message, "type": "server_error"}}
            if isinstance(exc, LLMResponseError):
                envelope["error"]["partial_text"] = exc.partial_text
            yield _event("error", envelope)
        finally:
            reading.__exit__(None, None, None)
            _release(request, llm)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest
