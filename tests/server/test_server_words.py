"""POST /v1/search takes mode and text_weight; results say who found them, with a snippet."""

from __future__ import annotations

import httpx

from zeroshot_vision.server._client import ServerClient


def test_search_modes_over_http(live) -> None:
    with httpx.Client(base_url=live.url, timeout=60) as http:
        answer = http.post("/v1/search", json={"query": "chelsea", "k": 3, "mode": "text"})
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert results[0]["id"] == "chelsea.png"
        assert results[0]["found_by"] == ["text"] and results[0]["probability"] is None
        assert "[chelsea]" in results[0]["snippet"]
        hybrid = http.post("/v1/search", json={"query": "chelsea", "k": 6}).json()["results"]
        found = {row["id"]: row for row in hybrid}
        assert found["chelsea.png"]["found_by"] == ["vector", "text"]
        assert found["chelsea.png"]["probability"] is not None
        vector = http.post("/v1/search", json={"query": "chelsea", "mode": "vector"}).json()
        assert all(row["found_by"] == ["vector"] for row in vector["results"])
        bad = http.post("/v1/search", json={"query": "x", "mode": "lexical"})
        assert bad.status_code in (400, 422)
        weight = http.post("/v1/search", json={"query": "x", "text_weight": -1})
        assert weight.status_code == 400 and "text_weight" in weight.text


def test_the_client_passes_the_mode_and_reads_snippets(live) -> None:
    with ServerClient(live.url) as client:
        results = client.search(index=None, query='"coffee*', mode="text", k=2)
    assert results[0].id == "coffee.png"
    assert results[0].found_by == ("text",) and "[coffee]" in (results[0].snippet or "")
