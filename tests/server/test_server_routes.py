"""The server's own routes over real HTTP (httpx): search, classify, tag, indexes, images,
health, metrics, writes, and the bad input each must answer with a specific 4xx."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests.helpers import LiveServer, open_service, start_server, stop_server

from zeroshot_vision.server._inputs import Limits


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@pytest.fixture(scope="module")
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as made:
        yield made


def expect_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


# -- search --------------------------------------------------------------------------------


def test_search_answers_what_the_engine_answers(
    http: httpx.Client, photo_index: Path, tiny_encoder: Any
) -> None:
    from zeroshot_vision._engine import SearchEngine

    answer = http.post("/v1/search", json={"query": "a cat on a sofa", "k": 4})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    with SearchEngine.open(photo_index, encoder=tiny_encoder) as engine:
        expected = engine.search("a cat on a sofa", k=4)
    # The fields and values of zsv search --json (SearchResults.to_json).
    # The server's rows add the fused score (which --server hands to SearchResults).
    rows = [{k: v for k, v in row.items() if k != "fused_score"} for row in body["results"]]
    assert rows == json.loads(expected.to_json())
    assert body["index"] == "photos"


def _search_response_as_before(index: str, query: str, results: Any) -> Any:
    """The pydantic answer /v1/search built before it wrote its JSON with orjson."""
    from zeroshot_vision.server._schemas import MomentOut, SearchResponse, SearchResultOut

    return SearchResponse(
        index=index,
        query=query,
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
                        id=m.id, score=m.score, probability=m.probability, timestamp=m.timestamp
                    )
                    for m in r.moments
                ],
            )
            for rank, r in enumerate(results, start=1)
        ],
        warnings=list(results.warnings),
    )


def test_search_bytes_are_the_pydantic_answer_of_before(
    http: httpx.Client, photo_index: Path, tiny_encoder: Any
) -> None:
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision.server._schemas import SearchResponse

    answer = http.post("/v1/search", json={"query": "a rocket on its pad", "k": 5})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    with SearchEngine.open(photo_index, encoder=tiny_encoder) as engine:
        results = engine.search("a rocket on its pad", k=5)
    before = _search_response_as_before("photos", answer.json()["query"], results)
    assert SearchResponse.model_validate_json(answer.content) == before
    assert json.loads(answer.content) == json.loads(before.model_dump_json())


def test_search_document_writes_what_pydantic_wrote_for_every_field() -> None:
    """Moments, timestamps, warnings, hybrid fields, odd metadata and non-finite scores."""
    import datetime

    from zeroshot_vision._results import SearchResults
    from zeroshot_vision._types import SearchResult
    from zeroshot_vision.server._search_routes import json_body, search_document

    moment = SearchResult(
        id="v.mp4#12.5", score=0.25, probability=0.5, metadata={"timestamp": 12.5}
    )
    results = SearchResults(
        [
            SearchResult(
                id="v.mp4#3",
                score=0.3125,
                probability=0.71,
                metadata={"timestamp": 3, "camera": "x", "tags": ["a", "b"], "n": 2**40},
                found_by=("vector", "text"),
                snippet="a [red] car",
                fused_score=0.032,
                moments=(moment,),
            ),
            SearchResult(
                id="photo.jpg",
                score=float("nan"),
                probability=None,
                metadata={
                    "taken": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC),
                    "raw": b"bytes",
                    "nested": {"deep": [1.5, None, True]},
                },
                found_by=("text",),
            ),
        ],
        warnings=["the query may be in a language the model cannot read"],
    )
    data = json_body(search_document("photos", "red car", results))
    before = _search_response_as_before("photos", "red car", results)
    assert json.loads(data) == json.loads(before.model_dump_json())
    assert "timestamp" not in json.loads(data)["results"][1]
    assert "moments" not in json.loads(data)["results"][1]


def test_search_with_images_and_negatives_builds_the_cli_query(
    http: httpx.Client, photo_index: Path, tiny_encoder: Any, photo_paths: list[Path]
) -> None:
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._query import Query

    chelsea = photo_paths[2]
    answer = http.post(
        "/v1/search",
        json={"query": "an animal", "images": [b64(chelsea)], "negative": ["people"], "k": 3},
    )
    assert answer.status_code == 200, answer.text
    query = Query.text("an animal") + Query.image(chelsea, 0.5) - Query.text("people", 0.5)
    with SearchEngine.open(photo_index, encoder=tiny_encoder) as engine:
        expected = json.loads(engine.search(query, k=3).to_json())
    got = answer.json()["results"]
    assert [r["id"] for r in got] == [r["id"] for r in expected]
    np.testing.assert_allclose([r["score"] for r in got], [r["score"] for r in expected], atol=1e-5)

    alone = http.post("/v1/search", json={"images": [b64(chelsea)], "k": 1}).json()
    assert alone["results"][0]["id"] == "chelsea.png"  # itself, the nearest
    assert alone["results"][0]["probability"] is None


def test_search_filter_and_min_probability(http: httpx.Client) -> None:
    everything = http.post("/v1/search", json={"query": "a photo", "k": 6}).json()["results"]
    kept = http.post(
        "/v1/search", json={"query": "a photo", "k": 6, "min_probability": 0.5}
    ).json()["results"]
    assert kept == [r for r in everything if r["probability"] >= 0.5]
    only = http.post(
        "/v1/search",
        json={"query": "a photo", "filter": {"path": {"$in": [everything[0]["metadata"]["path"]]}}},
    ).json()["results"]
    assert [r["id"] for r in only] == [everything[0]["id"]]


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"query": "a cat", "filter": {"year": {"$near": 3}}}, "invalid_filter", "$near"),
        ({"query": "a cat", "k": 0}, None, "k must be from 1"),
        ({"query": "a cat", "k": "ten"}, "invalid_type", "k"),
        ({"query": "   "}, "invalid_value", "empty"),
        ({}, "invalid_value", "give words"),
        ({"query": "a cat", "min_probability": 2}, "invalid_value", "min_probability"),
        ({"query": "a cat", "colour": "red"}, None, "colour"),
        ({"query": "a cat", "index": "nope"}, "index_not_found", "nope"),
    ],
)
def test_bad_searches_get_a_specific_error(
    http: httpx.Client, body: dict[str, Any], code: str | None, words: str
) -> None:
    response = http.post("/v1/search", json=body)
    status = 404 if code == "index_not_found" else 400
    assert words in expect_error(response, status, code)["message"]


def test_lone_surrogates_malformed_json_and_wrong_types(http: httpx.Client) -> None:
    surrogate = b'{"query": "a \\ud800 cat"}'
    response = http.post(
        "/v1/search", content=surrogate, headers={"content-type": "application/json"}
    )
    assert "lone surrogate" in expect_error(response, 400, "invalid_value")["message"]
    model = http.get("/v1/models").json()["data"][0]["id"]
    body = json.dumps({"model": model, "input": ["ok", "a \ud800"]}).encode()
    response = http.post(
        "/v1/embeddings", content=body, headers={"content-type": "application/json"}
    )
    error = expect_error(response, 400, "invalid_value")
    assert "input[1]" in error["message"]

    broken = http.post(
        "/v1/search", content=b'{"query": "a cat",', headers={"content-type": "application/json"}
    )
    expect_error(broken, 400, "invalid_json")
    not_object = http.post("/v1/search", json=["a cat"])
    expect_error(not_object, 400, "invalid_json")
    wrong_type = http.post("/v1/embeddings", json={"model": model, "input": 42})
    assert expect_error(wrong_type, 400, "invalid_type")["param"].startswith("input")
    assert http.get("/healthz").status_code == 200


# -- classify and tag ----------------------------------------------------------------------


def test_classify_equals_the_encoder(
    http: httpx.Client, tiny_encoder: Any, photo_paths: list[Path]
) -> None:
    labels = ["a cat", "a rocket", "a cup of coffee"]
    chelsea, rocket = photo_paths[2], photo_paths[3]
    response = http.post(
        "/v1/classify",
        json={"images": [b64(chelsea), "bm90IGFuIGltYWdl", b64(rocket)], "labels": labels},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert results[1]["labels"] is None and "not an image" in results[1]["error"]
    for result, path in ((results[0], chelsea), (results[2], rocket)):
        expected = tiny_encoder.classify(path, labels)
        assert [s["label"] for s in result["labels"]] == [s.label for s in expected]
        np.testing.assert_allclose(
            [s["probability"] for s in result["labels"]],
            [s.probability for s in expected],
            atol=1e-5,
        )


def test_classify_bytes_are_the_pydantic_answer_of_before(
    http: httpx.Client, tiny_encoder: Any, photo_paths: list[Path]
) -> None:
    from zeroshot_vision.server._schemas import ClassifyResponse, ImageLabelsOut, LabelScoreOut

    labels = ["a cat", "a rocket"]
    images = [b64(photo_paths[3]), "bm90IGFuIGltYWdl", b64(photo_paths[2])]
    response = http.post("/v1/classify", json={"images": images, "labels": labels})
    assert response.status_code == 200, response.text
    body = response.json()
    before = ClassifyResponse(
        model=body["model"],
        results=[
            ImageLabelsOut(
                index=0,
                labels=[
                    LabelScoreOut(label=s.label, probability=s.probability, score=s.score)
                    for s in tiny_encoder.classify(photo_paths[3], labels)
                ],
            ),
            ImageLabelsOut(index=1, error=body["results"][1]["error"]),
            ImageLabelsOut(
                index=2,
                labels=[
                    LabelScoreOut(label=s.label, probability=s.probability, score=s.score)
                    for s in tiny_encoder.classify(photo_paths[2], labels)
                ],
            ),
        ],
    )
    parsed = ClassifyResponse.model_validate_json(response.content)
    assert parsed.model == before.model
    assert [r.model_dump(exclude={"labels"}) for r in parsed.results] == [
        r.model_dump(exclude={"labels"}) for r in before.results
    ]
    for got, expected in zip(parsed.results, before.results):
        if expected.labels is None:
            assert got.labels is None
            continue
        assert got.labels is not None
        assert [s.label for s in got.labels] == [s.label for s in expected.labels]
        np.testing.assert_allclose(
            [s.probability for s in got.labels], [s.probability for s in expected.labels], atol=1e-5
        )
    assert set(json.loads(response.content)) == set(json.loads(before.model_dump_json()))


def test_tag_scores_the_stored_vectors(
    http: httpx.Client, photo_index: Path, tiny_encoder: Any
) -> None:
    from zeroshot_vision._engine import SearchEngine

    response = http.post("/v1/tag", json={"labels": "a cat, a rocket"})
    assert response.status_code == 200, response.text
    with SearchEngine.open(photo_index, encoder=tiny_encoder) as engine:
        report = engine.classify_indexed("a cat, a rocket")
    assert [
        (r["image"], [s["label"] for s in r["labels"]]) for r in response.json()["results"]
    ] == [(r.source, [s.label for s in r.labels]) for r in report.results]
    expect_error(http.post("/v1/tag", json={"labels": " , "}), 400, "invalid_value")


def _tag_response_as_before(index: str, report: Any) -> Any:
    """The pydantic answer /v1/tag built before it wrote its JSON with orjson."""
    from zeroshot_vision.server._schemas import LabelScoreOut, TaggedImage, TagResponse

    return TagResponse(
        index=index,
        results=[
            TaggedImage(
                image=r.source,
                labels=[
                    LabelScoreOut(label=s.label, probability=s.probability, score=s.score)
                    for s in r.labels
                ],
            )
            for r in report.results
        ],
    )


def test_tag_bytes_are_the_pydantic_answer_of_before(
    http: httpx.Client, photo_index: Path, tiny_encoder: Any
) -> None:
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision.server._schemas import TagResponse

    labels = ["a cat", "a rocket", "a cup of coffee"]
    response = http.post("/v1/tag", json={"labels": labels})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    with SearchEngine.open(photo_index, encoder=tiny_encoder) as engine:
        report = engine.classify_indexed(labels)
    assert len(report.results) == 6
    before = _tag_response_as_before("photos", report)
    # Every float exactly as pydantic wrote it: the stored vectors and the labels' text
    # vectors are the ones the engine uses in-process.
    assert TagResponse.model_validate_json(response.content) == before
    assert json.loads(response.content) == json.loads(before.model_dump_json())


def test_tag_document_writes_what_pydantic_wrote() -> None:
    """float32 and float64 scores, a non-ASCII source, and an image with no labels."""
    from zeroshot_vision._types import ClassifyReport, ImageLabels, LabelScore
    from zeroshot_vision.server._search_routes import json_body, tag_document

    report = ClassifyReport(
        results=(
            ImageLabels(
                source="fotos/café.jpg",
                labels=(
                    LabelScore(label="a cat", probability=np.float32(0.1), score=np.float32(0.3)),
                    LabelScore(label="a dog", probability=0.0123456789012345, score=-0.25),
                ),
            ),
            ImageLabels(source="empty.png", labels=()),
        )
    )
    data = json_body(tag_document("photos", report))
    before = _tag_response_as_before("photos", report)
    assert json.loads(data) == json.loads(before.model_dump_json())
    assert json.loads(data)["results"][0]["labels"][0]["probability"] == float(np.float32(0.1))


# -- indexes and images --------------------------------------------------------------------


def test_index_info(http: httpx.Client, live: LiveServer) -> None:
    info = http.get("/v1/indexes/photos").json()
    assert info == {
        "name": "photos",
        "count": 6,
        "model": live.service.models[0].name,
        "dim": 32,
        "store": "faiss",
        "writable": False,
    }
    assert http.get("/v1/indexes").json()["data"] == [info]
    expect_error(http.get("/v1/indexes/other"), 404, "index_not_found")


def test_images_serves_only_files_the_index_holds(
    http: httpx.Client, photo_paths: list[Path]
) -> None:
    response = http.get("/v1/images/chelsea.png")
    assert response.status_code == 200
    assert response.content == photo_paths[2].read_bytes()
    assert response.headers["content-type"] == "image/png"
    for wanted in ("nope.png", "../../../../etc/passwd", "%2Fetc%2Fpasswd", str(photo_paths[2])):
        expect_error(http.get(f"/v1/images/{wanted}"), 404)


def test_writes_are_refused_unless_allowed(http: httpx.Client, photo_paths: list[Path]) -> None:
    response = http.post(
        "/v1/indexes/photos/records", json={"id": "x", "image": b64(photo_paths[0])}
    )
    expect_error(response, 403, "writes_not_allowed")
    expect_error(http.delete("/v1/indexes/photos/records/chelsea.png"), 403, "writes_not_allowed")


# -- health, metrics, guards ---------------------------------------------------------------


def test_health_readiness_metrics_and_openapi(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").status_code == 200
    http.post("/v1/search", json={"query": "metrics please"})
    text = http.get("/metrics").text
    assert 'zsv_requests_total{route="/v1/search",status="200"}' in text
    assert "zsv_batch_size_bucket" in text and "zsv_queue_depth" in text
    assert 'zsv_request_seconds_count{route="/v1/search"}' in text
    paths = http.get("/openapi.json").json()["paths"]
    assert {"/v1/embeddings", "/v1/search", "/v1/classify", "/v1/models"} <= set(paths)
    # Routes that write their own JSON bytes still document their response model.
    for path, model in (
        ("/v1/search", "SearchResponse"),
        ("/v1/classify", "ClassifyResponse"),
        ("/v1/tag", "TagResponse"),
        ("/v1/embeddings", "EmbeddingResponse"),
    ):
        schema = paths[path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}, path


def test_foreign_host_is_refused_and_cors_is_off(http: httpx.Client) -> None:
    rebound = http.get("/v1/models", headers={"host": "evil.example"})
    expect_error(rebound, 403, "host_not_allowed")
    ok = http.get("/v1/models", headers={"origin": "https://evil.example"})
    assert ok.status_code == 200 and "access-control-allow-origin" not in ok.headers
    preflight = http.options(
        "/v1/search",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_bodies_over_the_limit_get_413(photo_index: Path, tiny_encoder: Any) -> None:
    service = open_service(photo_index, tiny_encoder)
    server, running = start_server(service, limits=Limits(max_body_bytes=2_000))
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            big = {"query": "x" * 5_000}
            expect_error(http.post("/v1/search", json=big), 413, "body_too_large")

            def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
                yield b'{"query": "'
                for _ in range(10):
                    yield b"y" * 500
                yield b'"}'

            chunked = http.post(
                "/v1/search", content=chunks(), headers={"content-type": "application/json"}
            )
            expect_error(chunked, 413, "body_too_large")
            assert http.post("/v1/search", json={"query": "small"}).status_code == 200
    finally:
        stop_server(running)
        service.close()


# -- writes --------------------------------------------------------------------------------


def test_writes_and_concurrent_indexing_are_seen(
    tmp_path: Path, tiny_encoder: Any, photo_paths: list[Path]
) -> None:
    from zeroshot_vision._engine import SearchEngine

    folder = tmp_path / "index"
    with SearchEngine.create(folder, encoder=tiny_encoder) as engine:
        engine.index_images(photo_paths[:2], root=photo_paths[0].parent)
    service = open_service(folder, tiny_encoder, writes=True)
    server, running = start_server(service)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            added = http.post(
                "/v1/indexes/photos/records",
                json={"id": "uploaded-cat", "image": b64(photo_paths[2]), "metadata": {"k": 1}},
            )
            assert added.status_code == 200, added.text
            assert added.json() == {"index": "photos", "id": "uploaded-cat", "count": 3}
            found = http.post("/v1/search", json={"images": [b64(photo_paths[2])], "k": 1})
            assert found.json()["results"][0]["id"] == "uploaded-cat"
            assert found.json()["results"][0]["metadata"] == {"k": 1}
            expect_error(
                http.post(
                    "/v1/indexes/photos/records",
                    json={"id": "x", "image": b64(photo_paths[2]), "metadata": {"path": "/etc"}},
                ),
                400,
            )

            # Another writer (as a concurrent zsv index would) commits to the folder.
            with SearchEngine.open(folder, encoder=tiny_encoder) as other:
                other.index_images([photo_paths[3]], ids=["from-elsewhere"])
            assert http.get("/v1/indexes/photos").json()["count"] == 4

            gone = http.delete("/v1/indexes/photos/records/uploaded-cat")
            assert gone.json() == {
                "index": "photos",
                "id": "uploaded-cat",
                "deleted": True,
                "count": 3,
            }
            again = http.delete("/v1/indexes/photos/records/uploaded-cat")
            assert again.json()["deleted"] is False
        with SearchEngine.open(folder, encoder=tiny_encoder) as check:
            assert sorted(check.store.ids()) == sorted(
                ["astronaut.png", "coffee.png", "from-elsewhere"]
            )
    finally:
        stop_server(running)
        service.close()


def test_a_text_search_is_one_forward_pass(
    live: LiveServer, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``zsv search --server`` waits for: one text pass of ``TEXT_PASS_ROWS`` rows per
    search (the reading checks only tokenize), and none when the text cache answers."""
    from zeroshot_vision._encoder import TEXT_PASS_ROWS

    model = live.service.models[0].encoder._model
    real = model.get_text_features
    rows: list[int] = []

    def counted(**inputs: Any) -> Any:
        rows.append(int(inputs["input_ids"].shape[0]))
        return real(**inputs)

    monkeypatch.setattr(model, "get_text_features", counted)
    body = {"query": "a striped cat asleep on a one-pass sofa", "k": 3}
    first = http.post("/v1/search", json=body)
    assert first.status_code == 200, first.text
    assert rows == [TEXT_PASS_ROWS]
    again = http.post("/v1/search", json=body)
    assert again.json()["results"] == first.json()["results"]
    assert rows == [TEXT_PASS_ROWS]  # the cache answered
