"""The request and response bodies of ``zsv serve``, as pydantic models.

``/v1/embeddings``, ``/v1/models`` and the error envelope follow OpenAI's API, so its
clients work unchanged; the other routes are this project's own. Images travel inside the
JSON as ``data:image/...;base64,`` URLs or bare base64: the server never fetches a URL
nor reads a path named in a request.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

__all__ = [
    "ClassifyRequest",
    "ClassifyResponse",
    "DeleteResponse",
    "Embedding",
    "EmbeddingItem",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "EmbeddingUsage",
    "ErrorBody",
    "ErrorEnvelope",
    "ImageInput",
    "ImageLabelsOut",
    "ImageURL",
    "ImageURLInput",
    "IndexInfo",
    "IndexList",
    "LabelScoreOut",
    "ModelCard",
    "ModelList",
    "MomentOut",
    "SearchRequest",
    "SearchResponse",
    "SearchResultOut",
    "TagRequest",
    "TagResponse",
    "TaggedImage",
    "UpsertRequest",
    "UpsertResponse",
]


class _Strict(BaseModel):
    """This project's own bodies: an unknown field is a mistake worth a 400."""

    model_config = ConfigDict(extra="forbid")


# -- errors -------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    """What went wrong, in OpenAI's shape.

    Attributes:
        message: One sentence for a person.
        type: ``invalid_request_error``, ``authentication_error``, ``not_found_error``,
            ``server_busy``, ...
        param: The request field at fault, when there is one.
        code: A stable machine-readable code (``model_not_found``, ``image_too_large``...).
    """

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorEnvelope(BaseModel):
    """Every error response: ``{"error": {...}}``, as OpenAI's API answers."""

    error: ErrorBody


# -- embeddings (OpenAI-compatible) -------------------------------------------------------


class ImageInput(_Strict):
    """An image item: ``{"image": "<data URL or base64>"}``."""

    image: str


class ImageURL(_Strict):
    """The ``image_url`` of a chat-content item; only ``data:`` URLs are accepted."""

    url: str
    detail: str | None = None


class ImageURLInput(_Strict):
    """An image item in OpenAI's chat-content form: ``{"type": "image_url", ...}``."""

    type: Literal["image_url"]
    image_url: ImageURL


EmbeddingItem = str | ImageInput | ImageURLInput


class EmbeddingRequest(BaseModel):
    """``POST /v1/embeddings``.

    Unknown fields are ignored rather than refused, as OpenAI clients may send ones this
    server has no use for (``user``).

    Attributes:
        input: A text, or a list of items; an item is a text, a ``data:image/...`` URL,
            or an image object (:class:`ImageInput`, :class:`ImageURLInput`).
        model: The loaded model's name or one of its aliases (``GET /v1/models``).
        encoding_format: ``float`` (lists of numbers) or ``base64`` (little-endian float32
            bytes, what the ``openai`` Python client asks for by default).
        dimensions: Accepted only when it equals the model's dimension.
    """

    model_config = ConfigDict(extra="ignore")

    input: str | list[EmbeddingItem]
    model: str
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


class Embedding(BaseModel):
    """One vector, in input order."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    """Tokens the text encoder consumed (images count none)."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    """The answer of ``POST /v1/embeddings``."""

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class ModelCard(BaseModel):
    """One loaded model, as ``GET /v1/models`` lists it."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "zeroshot-vision"
    dim: int
    aliases: list[str]


class ModelList(BaseModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


# -- search, classify, tag ----------------------------------------------------------------


class SearchRequest(_Strict):
    """``POST /v1/search``: words, images, or both, as ``zsv search`` takes them.

    Attributes:
        index: The index's name; may be left out when the server has one index.
        query: Words to look for.
        images: Reference images (data URLs or base64), each of weight ``image_weight``.
        image_weight: Default 0.5 next to words, 1 alone (``zsv search --image-weight``).
        negative: Descriptions to steer away from, each of weight 0.5 (``--not``).
        k: How many results at most.
        filter: A metadata filter (the filter language of the stores).
        min_probability: Drop results whose calibrated probability is lower.
        mode: ``hybrid``, ``vector`` or ``text`` (``SearchEngine.search``'s ``mode``;
            default hybrid where the index has a text side).
        text_weight: Hybrid: the words' ranking's weight against the vector one's 1.
        group_by: ``file``: one result per file, a video's best moment with its other
            moments in ``moments`` (``SearchEngine.search``'s ``group_by``).
    """

    index: str | None = None
    query: str | None = None
    images: list[str] = Field(default_factory=list)
    image_weight: float | None = None
    negative: list[str] = Field(default_factory=list)
    k: int = 10
    filter: dict[str, Any] | None = None
    min_probability: float | None = None
    mode: Literal["hybrid", "vector", "text"] | None = None
    text_weight: float = 1.0
    group_by: Literal["file"] | None = None


class MomentOut(BaseModel):
    """Another matching moment of a grouped result's video."""

    id: str
    score: float
    probability: float | None
    timestamp: float | None


class SearchResultOut(BaseModel):
    """One result: the fields of ``zsv search --json``, and for a video frame its
    ``timestamp`` (seconds from the start; also in ``metadata``)."""

    rank: int
    id: str
    score: float
    probability: float | None
    metadata: dict[str, Any]
    found_by: list[str] = Field(default_factory=lambda: ["vector"])
    snippet: str | None = None
    fused_score: float | None = None
    timestamp: float | None = None
    moments: list[MomentOut] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _moment_fields_when_set(self, handler: SerializerFunctionWrapHandler) -> Any:
        # As zsv search --json: a photo's row has no timestamp, an ungrouped one no moments.
        data = handler(self)
        if isinstance(data, dict):
            if data.get("timestamp") is None:
                data.pop("timestamp", None)
            if not data.get("moments"):
                data.pop("moments", None)
        return data


class SearchResponse(BaseModel):
    """The answer of ``POST /v1/search``."""

    index: str
    query: str
    results: list[SearchResultOut]
    warnings: list[str] = []
    """What may make the results poor, one line each (a query in a language the model
    cannot read); the results are still the model's best answer."""


class ClassifyRequest(_Strict):
    """``POST /v1/classify``: labels scored against each image.

    Attributes:
        images: The images (data URLs or base64).
        labels: Candidate descriptions, or one comma-separated string.
        softmax: As ``zsv classify --softmax``; default independent sigmoids for SigLIP.
        model: Which loaded model, when the server has several.
    """

    images: list[str]
    labels: list[str] | str
    softmax: bool | None = None
    model: str | None = None


class LabelScoreOut(BaseModel):
    """A label's probability and cosine score."""

    label: str
    probability: float
    score: float


class ImageLabelsOut(BaseModel):
    """One image's labels, most likely first, or why it could not be read."""

    index: int
    labels: list[LabelScoreOut] | None = None
    error: str | None = None


class ClassifyResponse(BaseModel):
    """The answer of ``POST /v1/classify``: one entry per image, in input order."""

    model: str
    results: list[ImageLabelsOut]


class TagRequest(_Strict):
    """``POST /v1/tag``: labels scored against every stored image, from stored vectors.

    Attributes:
        index: The index's name (may be left out with one index).
        labels: Candidate descriptions, or one comma-separated string.
    """

    index: str | None = None
    labels: list[str] | str


class TaggedImage(BaseModel):
    """A stored image and all its labels, most likely first."""

    image: str
    labels: list[LabelScoreOut]


class TagResponse(BaseModel):
    """The answer of ``POST /v1/tag``."""

    index: str
    results: list[TaggedImage]


# -- indexes -------------------------------------------------------------------------------


class IndexInfo(BaseModel):
    """``GET /v1/indexes/{name}``."""

    name: str
    count: int
    model: str
    dim: int
    store: str
    writable: bool


class IndexList(BaseModel):
    """``GET /v1/indexes``."""

    data: list[IndexInfo]


class UpsertRequest(_Strict):
    """``POST /v1/indexes/{name}/records``: add (or replace) one image (``--allow-writes``).

    Attributes:
        id: The record's id.
        image: The image (a data URL or base64).
        metadata: Its metadata (JSON-like; no ``path``: the server stores no file).
    """

    id: str
    image: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class UpsertResponse(BaseModel):
    """What an upsert stored."""

    index: str
    id: str
    count: int


class DeleteResponse(BaseModel):
    """What a delete removed (``deleted`` is false for an id that was not stored)."""

    index: str
    id: str
    deleted: bool
    count: int
