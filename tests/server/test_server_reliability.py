"""What one hostile client must not do to ``zsv serve`` (issue 29): freeze the event loop,
exhaust memory or connections, get a 500 or an undocumented error code, or read files
the index does not own. Each test sends the attack over real HTTP on loopback."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from tests.helpers import LiveServer, open_service, start_server, stop_server


@pytest.fixture(scope="module")
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as made:
        yield made


def png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


# -- item 16: deeply nested JSON --------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"query": "a cat", "filter": ' + '{"$and": [' * 3000 + "{}" + "]}" * 3000 + "}",
    ],
    ids=["bare-arrays", "deep-filter"],
)
def test_deeply_nested_json_is_invalid_json(http: httpx.Client, body: str) -> None:
    response = http.post(
        "/v1/search", content=body.encode(), headers={"content-type": "application/json"}
    )
    error = error_of(response, 400)
    assert error["code"] == "invalid_json", error
    assert "nested" in error["message"]
    # The server stays up and answers the next request.
    assert http.post("/v1/search", json={"query": "a cat", "k": 1}).status_code == 200


def test_a_body_that_is_not_utf8_is_invalid_json(http: httpx.Client) -> None:
    response = http.post(
        "/v1/search", content=b'{"query": "\xff\xfe"}', headers={"content-type": "application/json"}
    )
    assert error_of(response, 400)["code"] == "invalid_json"


# -- item 11: lone surrogate id ---------------------------------------------------------------


def test_upsert_with_a_lone_surrogate_id_is_400(
    tmp_path: Path, tiny_encoder: Any, photo_paths: list[Path]
) -> None:
    from zeroshot_vision.engine import SearchEngine

    folder = tmp_path / "index"
    with SearchEngine.create(folder, encoder=tiny_encoder) as engine:
        engine.index_images(photo_paths[:1], root=photo_paths[0].parent)
    service = open_service(folder, tiny_encoder, writes=True)
    server, running = start_server(service)
    image = base64.b64encode(photo_paths[1].read_bytes()).decode()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            # JSON escapes can carry a lone surrogate that no UTF-8 body could.
            body = '{"id": "\\ud800cat", "image": "' + image + '"}'
            response = http.post(
                "/v1/indexes/photos/records",
                content=body.encode(),
                headers={"content-type": "application/json"},
            )
            error = error_of(response, 400)
            assert error["param"] == "id"
            assert http.get("/v1/indexes/photos").json()["count"] == 1
    finally:
        stop_server(running)
        service.close()


def test_engine_refuses_a_lone_surrogate_id_with_the_project_error(
    tmp_path: Path, tiny_encoder: Any, photo_paths: list[Path]
) -> None:
    from zeroshot_vision.engine import SearchEngine
    from zeroshot_vision.errors import InvalidInputError

    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:
        with pytest.raises(InvalidInputError, match="UTF-8"):
            engine.index_images([photo_paths[0]], ids=["\udcffbad"])
        assert len(engine.store) == 0


# -- item 2: labels -----------------------------------------------------------------------------


def test_too_many_labels_are_refused_and_healthz_stays_prompt(
    http: httpx.Client, live: LiveServer
) -> None:
    many = [f"label number {i}" for i in range(40_000)]
    answers: dict[str, httpx.Response] = {}

    image = png_b64(Image.new("RGB", (32, 32), (200, 30, 30)))

    def send(route: str, labels: object) -> None:
        body = {"labels": labels, **({"images": [image]} if route == "/v1/classify" else {})}
        with httpx.Client(base_url=live.url, timeout=120) as other:
            answers[route] = other.post(route, json=body)

    senders = [
        threading.Thread(target=send, args=("/v1/tag", many)),
        threading.Thread(target=send, args=("/v1/classify", ",".join(many))),
    ]
    for sender in senders:
        sender.start()
    try:
        time.sleep(0.3)  # the big bodies are being parsed and checked
        for _ in range(5):
            started = time.monotonic()
            alive = http.get("/healthz", timeout=2)
            assert alive.status_code == 200
            assert time.monotonic() - started < 2
    finally:
        for sender in senders:
            sender.join(timeout=120)
    limit = live.settings.limits.max_labels
    for route in ("/v1/tag", "/v1/classify"):
        error = error_of(answers[route], 413)
        assert error["code"] == "too_many_labels"
        assert f"{limit:,}" in error["message"]


def test_labels_up_to_the_limit_are_answered(http: httpx.Client, live: LiveServer) -> None:
    limit = live.settings.limits.max_labels
    # Repeats count towards the limit but are answered once.
    labels = [f"label {i % (limit // 2)}" for i in range(limit)]
    response = http.post("/v1/tag", json={"labels": labels})
    assert response.status_code == 200, response.text
    first = response.json()["results"][0]
    assert len(first["labels"]) == limit // 2


# -- item 13: files a record's metadata names ----------------------------------------------------


@pytest.fixture
def planted(tmp_path: Path, tiny_encoder: Any, photo_paths: list[Path]) -> dict[str, Any]:
    """An index of a photo folder, plus records whose stored ``path`` (as a crafted import
    or a caller's metadata would set it) names files that must not be handed out."""
    from zeroshot_vision.engine import SearchEngine

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cat.png").write_bytes(photo_paths[2].read_bytes())
    secrets = tmp_path / "private"
    secrets.mkdir()
    (secrets / "token.txt").write_text("SECRET-TOKEN-123\n")
    (secrets / "token.png").write_text("SECRET-TOKEN-123\n")  # a text file named .png
    Image.new("RGB", (8, 8), (9, 9, 9)).save(secrets / "private.png")  # an image, outside
    (photos / "notes.png").write_text("SECRET-TOKEN-123\n")  # inside, but not an image
    planted = {
        "text": secrets / "token.txt",
        "renamed": secrets / "token.png",
        "outside": secrets / "private.png",
        "escape": photos / ".." / "private" / "private.png",
        "inside-text": photos / "notes.png",
    }
    folder = tmp_path / "index"
    with SearchEngine.create(folder, encoder=tiny_encoder) as engine:
        engine.index_folder(photos)
        engine.index_images(
            [photo_paths[0]] * len(planted),
            ids=list(planted),
            metadata=[{"path": str(path)} for path in planted.values()],
        )
    return {"folder": folder, "planted": planted, "photo": photos / "cat.png"}


def test_images_route_serves_only_images_under_the_source_folders(
    planted: dict[str, Any], tiny_encoder: Any
) -> None:
    service = open_service(planted["folder"], tiny_encoder)
    server, running = start_server(service)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            good = http.get("/v1/images/cat.png")
            assert good.status_code == 200
            assert good.content == planted["photo"].read_bytes()
            for record_id in planted["planted"]:
                response = http.get(f"/v1/images/{record_id}")
                assert b"SECRET" not in response.content
                assert error_of(response, 404)["code"] == "image_not_found", record_id
    finally:
        stop_server(running)
        service.close()


def test_app_and_langchain_use_the_same_rule(planted: dict[str, Any], tiny_encoder: Any) -> None:
    pytest.importorskip("langchain_core")
    from zeroshot_vision.app.logic import image_path_for_id
    from zeroshot_vision.engine import SearchEngine
    from zeroshot_vision.errors import ImageNotFoundError
    from zeroshot_vision.integrations.langchain import ZeroshotVisionVectorStore

    with SearchEngine.open(planted["folder"], encoder=tiny_encoder) as engine:
        assert image_path_for_id(engine.store, "cat.png", folder=engine.folder) == planted["photo"]
        for record_id in planted["planted"]:
            assert image_path_for_id(engine.store, record_id, folder=engine.folder) is None
        store = ZeroshotVisionVectorStore(engine=engine, image_content="base64")
        [document] = store.get_by_ids(["cat.png"])
        assert base64.b64decode(document.page_content) == planted["photo"].read_bytes()
        for record_id in planted["planted"]:
            with pytest.raises(ImageNotFoundError):
                store.get_by_ids([record_id])


def test_a_store_without_source_folders_still_serves_only_images(tmp_path: Path) -> None:
    from zeroshot_vision.index.serving import servable_image

    text = tmp_path / "id_ed25519"
    text.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    renamed = tmp_path / "key.jpg"
    renamed.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    photo = tmp_path / "ok.png"
    Image.new("RGB", (4, 4)).save(photo)
    assert servable_image(str(photo), None) == photo
    for bad in (str(text), str(renamed), str(tmp_path), "/dev/zero", "", None, 3, "a\x00b"):
        assert servable_image(bad, None) is None, bad
