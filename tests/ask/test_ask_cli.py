"""``zsv ask``: against the real server (plain, --stream, --json) and its failures."""

from __future__ import annotations

import json

import pytest
from tests.helpers import build_index

from zeroshot_vision._cli import main


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, tiny_model_dir, photo_paths):
    return build_index(tmp_path_factory.mktemp("ask-index"), tiny_model_dir, photo_paths[:4])


@pytest.mark.slow
def test_zsv_ask_against_the_real_server(index_dir, vlm_server, tiny_vlm_dir, capsys):
    base = ["ask", "Is there a cat?", "--index", str(index_dir), "--llm-url", vlm_server.base_url]
    assert main([*base, "--max-tokens", "6", "-k", "3", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["status"] == "answered" and answer["model"] == str(tiny_vlm_dir)
    assert len(answer["hits"]) == 3 and len(answer["shown"]) == 3
    assert answer["usage"]["completion_tokens"] <= 6
    assert set(answer["timings"]) >= {"retrieve_s", "encode_images_s", "model_s"}

    model = ["--llm-model", str(tiny_vlm_dir), "--max-tokens", "6"]
    assert main([*base, *model, "--stream", "--max-images", "1"]) == 0
    out, err = capsys.readouterr()
    assert "shown (the answer cites none):" in out or "cited:" in out
    assert "[1] " in out and "prompt +" in err and "model " in err


def test_zsv_ask_errors_are_one_line(index_dir, capsys, monkeypatch):
    from tests.ask.fake_llm import start_fake_llm

    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-printed")
    state, server = start_fake_llm(key="other")
    try:
        code = main(
            [
                "ask",
                "a cat",
                "--index",
                str(index_dir),
                "--llm-url",
                state.url,
                "--llm-model",
                "good",
            ]
        )
        err = capsys.readouterr().err
        assert code == 1 and "refused the API key (HTTP 401)" in err
        assert "sk-never-printed" not in err and "Traceback" not in err
        state.key = None
        code = main(
            [
                "ask",
                "a cat",
                "--index",
                str(index_dir),
                "--llm-url",
                state.url,
                "--llm-model",
                "good",
                "--min-probability",
                "0.9999",
            ]
        )
        out = capsys.readouterr().out
        assert code == 0 and "No photo matched" in out and state.requests[-1]["authorization"]
        assert len(state.requests) == 1  # the refused one only: the model was not asked
    finally:
        server.shutdown()
        server.server_close()
    assert main(["ask", "x" * 5000, "--index", str(index_dir), "--llm-url", state.url]) == 1
    assert "characters long" in capsys.readouterr().err
