"""``/v1/embeddings`` and ``/v1/models`` through the real ``openai`` client.

Every vector must equal what the in-process Encoder gives for the same input, in both
encodings; the server's errors must come back as the client's own exception types.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from tests.helpers import LiveServer, open_service, start_server, stop_server

openai = pytest.importorskip("openai")


def data_url(path: Path) -> str:
    kind = "png" if path.suffix == ".png" else "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(path.read_bytes()).decode()


def vectors(answer: Any) -> np.ndarray:
    """The vectors of an answer; asked for explicitly, base64 comes back undecoded."""
    return np.array(
        [
            np.frombuffer(base64.b64decode(item.embedding), "<f4")
            if isinstance(item.embedding, str)
            else item.embedding
            for item in answer.data
        ],
        dtype=np.float32,
    )


def client(live: LiveServer, key: str = "unused") -> Any:
    return openai.OpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def oa(live: LiveServer) -> Iterator[Any]:
    """One client for the module's server, closed at the end."""
    with client(live) as made:
        yield made


def model_name(live: LiveServer) -> str:
    return live.service.models[0].name


@pytest.mark.parametrize("encoding", ["float", "base64", None])
def test_text_embeddings_equal_the_encoders(
    live: LiveServer, oa: Any, tiny_encoder: Any, encoding: str | None
) -> None:
    texts = ["a photo of a cat", "A rocket on its launch pad", "coffee"]
    options = {"encoding_format": encoding} if encoding else {}  # None: the client's base64
    answer = oa.embeddings.create(model=model_name(live), input=texts, **options)
    assert [item.index for item in answer.data] == [0, 1, 2]
    got = vectors(answer)
    np.testing.assert_allclose(got, tiny_encoder.encode_texts(texts), atol=1e-6)
    assert answer.model == model_name(live)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == 3 * 64


def test_one_string_and_the_alias(live: LiveServer, oa: Any, tiny_encoder: Any) -> None:
    alias = live.service.models[0].aliases[0]
    answer = oa.embeddings.create(model=alias, input="a dog", encoding_format="float")
    assert len(answer.data) == 1
    np.testing.assert_allclose(
        answer.data[0].embedding, tiny_encoder.encode_texts("a dog")[0], atol=1e-6
    )


def test_image_embeddings_in_every_form_equal_the_encoders(
    live: LiveServer, oa: Any, tiny_encoder: Any, photo_paths: list[Path]
) -> None:
    from zeroshot_vision._images import load_image

    chelsea, rocket = photo_paths[2], photo_paths[3]
    items: list[Any] = [
        data_url(chelsea),
        {"image": base64.b64encode(rocket.read_bytes()).decode()},
        {"type": "image_url", "image_url": {"url": data_url(chelsea)}},
        "a cat",
    ]
    answer = oa.embeddings.create(model=model_name(live), input=items)
    got = vectors(answer)
    expected = tiny_encoder.encode_loaded(
        [load_image(p, draft_size=tiny_encoder.draft_size) for p in (chelsea, rocket, chelsea)]
    )
    np.testing.assert_allclose(got[:3], expected, atol=1e-5)
    np.testing.assert_allclose(got[3], tiny_encoder.encode_texts("a cat")[0], atol=1e-6)
    assert answer.usage.prompt_tokens == 64  # one text; images count none


def test_models_lists_the_loaded_model(live: LiveServer, oa: Any) -> None:
    models = oa.models.list()
    assert [m.id for m in models.data] == [model_name(live)]


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(side: int = 20_000) -> bytes:
    """A small PNG whose header claims ``side`` x ``side`` pixels (a decompression bomb)."""
    import struct
    import zlib

    small = png((8, 8))
    # Rewrite the IHDR chunk: width and height, then a fresh CRC.
    start = 8 + 8  # signature, then the IHDR length and type
    header = struct.pack(">II", side, side) + small[start + 8 : start + 13]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + header) & 0xFFFFFFFF)
    return small[:start] + header + crc + small[start + 13 + 4 :]


@pytest.mark.parametrize(
    ("items", "code", "words"),
    [
        ([], None, "input is empty"),
        (["a cat"] * 10_000, "too_many_inputs", "limit is 2,048"),
        (["   "], "invalid_value", "input[0] is empty"),
        (["data:image/png;base64,!!!notbase64"], "invalid_image", "not valid base64"),
        (["data:image/png;base64," + base64.b64encode(b"hello").decode()], "invalid_image",
         "not an image"),
        (["data:image/png;base64," + base64.b64encode(bomb_png()).decode()], "image_too_large",
         "decompression bomb"),
        ([{"type": "image_url", "image_url": {"url": "http://example.com/cat.jpg"}}],
         "invalid_image", "fetches no URL"),
        ([{"image": "file:///etc/passwd"}], "invalid_image", "fetches no URL"),
    ],
)  # fmt: skip
def test_bad_input_is_a_bad_request_error(
    live: LiveServer, oa: Any, items: list[Any], code: str | None, words: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oa.embeddings.create(model=model_name(live), input=items)
    error = info.value.body
    assert words in error["message"]
    if code:
        assert error["code"] == code
    assert oa.models.list().data  # and the server is still up


def test_truncated_jpeg_is_a_bad_request_error(
    live: LiveServer, oa: Any, photo_paths: list[Path]
) -> None:
    data = photo_paths[3].read_bytes()  # rocket.jpg
    truncated = "data:image/jpeg;base64," + base64.b64encode(data[: len(data) // 3]).decode()
    with pytest.raises(openai.BadRequestError) as info:
        oa.embeddings.create(model=model_name(live), input=[truncated])
    assert info.value.body["code"] == "invalid_image"
    assert info.value.body["param"] == "input[0]"


def test_unknown_model_is_not_found(live: LiveServer, oa: Any) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        oa.embeddings.create(model="text-embedding-3-small", input="a cat")
    assert info.value.body["code"] == "model_not_found"
    assert "text-embedding-3-small" in info.value.body["message"]


def test_wrong_or_missing_key_is_an_authentication_error(
    photo_index: Path, tiny_encoder: Any
) -> None:
    service = open_service(photo_index, tiny_encoder)
    server, running = start_server(service, api_key="s3cret-key")
    try:
        with (
            client(server, key="wrong") as wrong,
            pytest.raises(openai.AuthenticationError) as info,
        ):
            wrong.embeddings.create(model=model_name(server), input="x")
        assert info.value.body["code"] == "invalid_api_key"
        assert "s3cret" not in str(info.value.body)
        with client(server, key="s3cret-key") as right:
            answer = right.embeddings.create(model=model_name(server), input="a cat")
        assert len(answer.data) == 1
    finally:
        stop_server(running)
        service.close()


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_the_fast_json_body_is_the_documented_response(encoding: str) -> None:
    """``embedding_json`` writes, byte for byte in meaning, what the pydantic response
    model would: the same fields, and numbers that read back as the same float32s."""
    from zeroshot_vision.server._openai_routes import embedding_json
    from zeroshot_vision.server._schemas import Embedding, EmbeddingResponse, EmbeddingUsage

    rng = np.random.default_rng(3)
    rows = rng.standard_normal((3, 768)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    rows[0, :4] = [1e-7, -1e-30, 0.0, 1.0]  # exponents and whole numbers: their JSON forms
    body = embedding_json(rows, model="m", tokens=192, encoding=encoding)
    expected = EmbeddingResponse(
        data=[
            Embedding(
                index=i,
                embedding=base64.b64encode(v.astype("<f4").tobytes()).decode()
                if encoding == "base64"
                else v.tolist(),
            )
            for i, v in enumerate(rows)
        ],
        model="m",
        usage=EmbeddingUsage(prompt_tokens=192, total_tokens=192),
    )
    parsed = EmbeddingResponse.model_validate_json(body)
    assert parsed == expected
    if encoding == "float":
        got = np.array([item.embedding for item in parsed.data], dtype=np.float32)
        np.testing.assert_array_equal(got, rows)  # every float32 survives the round trip
