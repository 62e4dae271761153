"""The vision-language model's side of :mod:`zeroshot_vision._ask`: one chat endpoint.

:class:`LLMEndpoint` talks to any OpenAI-compatible ``/v1/chat/completions`` endpoint
(OpenAI, Ollama, vLLM, LM Studio, llama.cpp's server, ``transformers serve``) through the
``openai`` client (the ``ask`` extra), and turns its failures into the
:class:`~zeroshot_vision._errors.LLMError` tree. It is configured by a base URL, a model
and an API key, each given explicitly or read from the environment:

* ``OPENAI_BASE_URL``: the endpoint (``http://127.0.0.1:8000/v1``); OpenAI's when unset.
* ``OPENAI_API_KEY``: the key; local servers need none.
* ``ZSV_LLM_MODEL``: the model; when unset too, the one model the endpoint lists.

The key is kept out of every ``repr``, message and log line.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zeroshot_vision._errors import (
    InvalidInputError,
    LLMAuthError,
    LLMError,
    LLMImagesRejectedError,
    LLMModelNotFoundError,
    LLMRequestError,
    LLMResponseError,
    LLMTimeoutError,
    LLMUnreachableError,
)
from zeroshot_vision._optional import require

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "DEFAULT_IMAGE_SIDE",
    "Completion",
    "LLMEndpoint",
    "TokenUsage",
    "image_data_url",
]

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_SIDE = 768
"""Photos go to the model scaled down to this many pixels on their long side: about what
common vision-language models work at (LLaVA 336-672, Qwen2-VL and GPT-4o tile near 768),
and small enough that a message with several photos stays well under a megabyte."""

_NO_KEY = "no-key"
"""Sent when no key is configured: local servers ignore it, hosted ones answer 401."""

_DETAIL_CHARS = 300


@dataclass(frozen=True, kw_only=True)
class TokenUsage:
    """Tokens the endpoint counted for one answer (as it reports them).

    Attributes:
        prompt_tokens: Tokens of the prompt, images included.
        completion_tokens: Tokens of the answer.
    """

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """Prompt and answer together."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, kw_only=True)
class Completion:
    """One answer of the endpoint.

    Attributes:
        text: The answer's text.
        model: The model that answered, as the endpoint names it.
        usage: Token counts, when the endpoint reports them.
        finish_reason: Why it stopped (``"stop"``, ``"length"``, ...), when reported.
    """

    text: str
    model: str
    usage: TokenUsage | None = None
    finish_reason: str | None = None


def image_data_url(image: Image.Image, *, max_side: int = DEFAULT_IMAGE_SIDE) -> str:
    """``image`` as a ``data:image/jpeg;base64,...`` URL, scaled down to ``max_side``.

    Data URLs, not ``http://`` links: the endpoint may not reach the photos (and
    ``transformers serve`` would fetch a link itself).
    """
    from PIL import Image as PILImage

    picture = image.convert("RGB") if image.mode != "RGB" else image.copy()
    picture.thumbnail((max_side, max_side), PILImage.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class LLMEndpoint:
    """An OpenAI-compatible chat endpoint serving a (vision-)language model.

    Args:
        base_url: The endpoint, up to and including ``/v1``; default ``OPENAI_BASE_URL``,
            else OpenAI's.
        model: The model to ask, exactly as the endpoint names it; default
            ``ZSV_LLM_MODEL``, else the one model the endpoint lists (an error if it
            lists several).
        api_key: The key; default ``OPENAI_API_KEY``; none is needed by local servers.
        timeout: Seconds to wait for an answer (streamed: for each next piece of it).
        max_retries: How many times the client retries a connection error, a timeout or
            a 5xx before giving up (``openai``'s own back-off).
        max_tokens: The longest answer, in tokens.
        temperature: Sampling temperature (0: the most likely answer).
        http_client: An ``httpx.Client`` for the ``openai`` client (proxies, a test
            transport); default the ``openai`` client's own.

    Raises:
        MissingDependencyError: The ``openai`` package is not installed (the ``ask`` extra).
        InvalidInputError: A non-positive timeout or max_tokens, a negative retry count.
    """

    __slots__ = (
        "_client",
        "_key",
        "_resolved_model",
        "base_url",
        "max_retries",
        "max_tokens",
        "model",
        "temperature",
        "timeout",
    )

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        max_retries: int = 1,
        max_tokens: int = 512,
        temperature: float = 0.0,
        http_client: Any = None,
    ) -> None:
        openai = require("openai", extra="ask", purpose="asking a vision-language model")
        if not timeout > 0:
            raise InvalidInputError(f"timeout must be a positive number of seconds, not {timeout}")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise InvalidInputError(f"max_tokens must be a positive integer, not {max_tokens!r}")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise InvalidInputError(f"max_retries must be 0 or more, not {max_retries!r}")
        self.base_url: str = (
            base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        ).rstrip("/")
        self.model: str | None = model or os.environ.get("ZSV_LLM_MODEL") or None
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.max_tokens = max_tokens
        self.temperature = float(temperature)
        self._key = api_key or os.environ.get("OPENAI_API_KEY") or None
        self._resolved_model: str | None = self.model
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=self._key or _NO_KEY,
            timeout=self.timeout,
            max_retries=max_retries,
            http_client=http_client,
        )

    def __repr__(self) -> str:
        key = "set" if self._key else "none"
        return f"LLMEndpoint(base_url={self.base_url!r}, model={self.model!r}, api_key={key})"

    def with_model(self, model: str) -> LLMEndpoint:
        """Another endpoint object for the same URL and key (and settings), asking ``model``.

        The caller closes it.
        """
        return LLMEndpoint(
            self.base_url,
            model,
            self._key,
            timeout=self.timeout,
            max_retries=self.max_retries,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
        )

    def close(self) -> None:
        """Close the client's connections (also done by ``with LLMEndpoint(...) as llm``)."""
        self._client.close()

    def __enter__(self) -> LLMEndpoint:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def has_key(self) -> bool:
        """Whether an API key is configured (the key itself is never shown)."""
        return self._key is not None

    def models(self) -> list[str]:
        """The models the endpoint lists (``GET /models``).

        Raises:
            LLMError: The endpoint failed (a subclass says how).
        """
        try:
            return [item.id for item in self._client.models.list()]
        except Exception as exc:
            raise self._translate(exc, model=None) from exc

    def resolved_model(self) -> str:
        """The model to ask: the one configured, else the only one the endpoint lists.

        Raises:
            LLMModelNotFoundError: None configured and the endpoint lists none or several.
        """
        if self._resolved_model is None:
            available = self.models()
            if len(available) != 1:
                listed = ", ".join(available[:10]) or "none"
                raise LLMModelNotFoundError(
                    f"no model given and {self.base_url} lists {len(available)} "
                    f"({listed}); name one with model= / --llm-model / ZSV_LLM_MODEL",
                    model="",
                    available=available,
                )
            self._resolved_model = available[0]
        return self._resolved_model

    def complete(self, messages: Sequence[Mapping[str, Any]]) -> Completion:
        """Send ``messages`` and wait for the whole answer.

        Raises:
            LLMError: The endpoint failed (a subclass says how).
        """
        model = self.resolved_model()
        try:
            response = self._client.chat.completions.create(
                model=model,
                messages=list(messages),  # type: ignore[arg-type]
                max_tokens=self.max_tokens,
                temperature=self.temperature,
            )
        except Exception as exc:
            raise self._translate(exc, model=model) from exc
        if not response.choices:
            raise LLMResponseError(f"{self.base_url} answered without a choice (model {model})")
        choice = response.choices[0]
        return Completion(
            text=choice.message.content or "",
            model=response.model or model,
            usage=_usage(response.usage),
            finish_reason=choice.finish_reason,
        )

    def stream(self, messages: Sequence[Mapping[str, Any]]) -> Iterator[str | Completion]:
        """Send ``messages``; yield the answer's text as it comes, then its :class:`Completion`.

        Raises:
            LLMError: The endpoint failed, before or during the answer;
                :class:`~zeroshot_vision._errors.LLMResponseError` carries what had come
                (``partial_text``) when the stream broke.
        """
        model = self.resolved_model()
        pieces: list[str] = []
        usage = None
        answered_by = model
        finish_reason = None
        try:
            chunks = self._client.chat.completions.create(
                model=model,
                messages=list(messages),  # type: ignore[arg-type]
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                stream=True,
                stream_options={"include_usage": True},
            )
            for chunk in chunks:
                answered_by = chunk.model or answered_by
                if chunk.usage is not None:
                    usage = _usage(chunk.usage)
                for choice in chunk.choices:
                    finish_reason = choice.finish_reason or finish_reason
                    text = choice.delta.content if choice.delta is not None else None
                    if text:
                        pieces.append(text)
                        yield text
        except Exception as exc:
            error = self._translate(exc, model=model)
            if pieces and isinstance(error, LLMResponseError):
                error.partial_text = "".join(pieces)
            elif pieces:
                error = LLMResponseError(
                    f"the answer from {self.base_url} stopped after {len(''.join(pieces))} "
                    f"characters: {error}",
                    status=error.status,
                    detail=error.detail,
                    partial_text="".join(pieces),
                )
            raise error from exc
        yield Completion(
            text="".join(pieces), model=answered_by, usage=usage, finish_reason=finish_reason
        )

    def _available(self) -> list[str]:
        """The models the endpoint lists, or none if it cannot say (for messages)."""
        try:
            return [item.id for item in self._client.models.list()]
        except Exception:  # noqa: BLE001  # only decorates another error's message
            return []

    def _translate(self, exc: Exception, *, model: str | None) -> LLMError:
        """The :class:`LLMError` that says what went wrong, without the key."""
        openai = require("openai", extra="ask")
        httpx = require("httpx", extra="ask")
        where = self.base_url + (f" (model {model})" if model else "")
        if isinstance(exc, LLMError):
            return exc
        if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
            return LLMTimeoutError(f"{where} sent no answer within {self.timeout:g} s")
        if isinstance(exc, openai.APIConnectionError):
            return LLMUnreachableError(
                f"nothing answers at {self.base_url}: is the server running? ({exc.__cause__})"
            )
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = _detail(exc)
            said = f": {detail}" if detail else ""
            if status in (401, 403):
                hint = "set OPENAI_API_KEY or pass api_key" if not self._key else "check the key"
                return LLMAuthError(
                    f"{where} refused the API key (HTTP {status}); {hint}",
                    status=status,
                    detail=detail,
                )
            if status == 404 or (status == 400 and model and _names_model(detail, model)):
                available = self._available()
                listed = f"; it serves {', '.join(available[:10])}" if available else ""
                return LLMModelNotFoundError(
                    f"{self.base_url} does not serve the model {model!r} (HTTP {status})"
                    f"{said}{listed}",
                    model=model or "",
                    available=available,
                    status=status,
                    detail=detail,
                )
            if status in (400, 413, 415, 422):
                if _about_images(detail):
                    return LLMImagesRejectedError(
                        f"{where} does not take images (HTTP {status}){said}; ask a "
                        "vision-language model, or ask with max_images=0",
                        status=status,
                        detail=detail,
                    )
                return LLMRequestError(
                    f"{where} rejected the request (HTTP {status}){said}",
                    status=status,
                    detail=detail,
                )
            return LLMResponseError(
                f"{where} failed (HTTP {status}){said}", status=status, detail=detail
            )
        if isinstance(exc, openai.APIError):
            # An error event inside a stream: the server failed after it had answered 200.
            return LLMResponseError(f"{where} failed while answering: {_detail(exc) or exc}")
        if isinstance(exc, httpx.TransportError):
            return LLMResponseError(f"the connection to {where} broke: {type(exc).__name__}")
        return LLMResponseError(f"{where} sent an answer that could not be read: {exc!r}")


def _usage(usage: Any) -> TokenUsage | None:
    if usage is None:
        return None
    return TokenUsage(
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
    )


def _detail(exc: Any) -> str | None:
    """The endpoint's words about an error: OpenAI's ``{"error": {"message"}}`` or
    FastAPI's ``{"detail": ...}`` (``transformers serve``), else the raw body; shortened."""
    body = getattr(exc, "body", None)
    text: object = None
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            text = error.get("message")
        elif error is not None:
            text = error
        if text is None:
            text = body.get("detail", body.get("message"))
    elif body is not None:
        text = body
    if text is None:
        response = getattr(exc, "response", None)
        try:
            text = response.text if response is not None else None
        except Exception:  # noqa: BLE001  # a streamed response that was not read
            text = None
    if text is None or text == "":
        return None
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _DETAIL_CHARS else flat[: _DETAIL_CHARS - 1] + "…"


def _names_model(detail: str | None, model: str) -> bool:
    """Whether a 400's message is about the model name: ``transformers serve`` pinned to
    one model answers another with 400 ("Server is pinned to 'x'; requested 'y'")."""
    if not detail:
        return False
    lowered = detail.lower()
    quoted = any(f"{q}{model.lower()}{q}" in lowered for q in "'\"`")
    if _about_images(lowered.replace(model.lower(), "")):
        return False
    return quoted or ("model" in lowered and ("not found" in lowered or "unknown" in lowered))


_IMAGE_WORDS = re.compile(r"image|vision|multimodal|multi-modal|image_url", re.IGNORECASE)


def _about_images(detail: str | None) -> bool:
    return bool(detail and _IMAGE_WORDS.search(detail))
