"""``zsv eval ask`` and evaluate_ask: scores computed from known answers (scripted
endpoint), the CLI table and JSON, two models side by side, and bad case files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.helpers import build_index

from zeroshot_vision._cli import main
from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision._llm import LLMEndpoint
from zeroshot_vision.eval._ask import evaluate_ask, read_ask_cases

CASES = Path(__file__).parent / "data" / "ask_cases.jsonl"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, tiny_model_dir, photo_paths):
    return build_index(tmp_path_factory.mktemp("eval-index"), tiny_model_dir, photo_paths[:4])


def test_scores_follow_the_answers(photo_engine, fake_llm):
    cases = read_ask_cases(CASES)
    assert len(cases) == 4 and cases[3].ids == {"astronaut", "chelsea"}
    fake_llm.reply = "It is [1], maybe [2], not [7]."
    with LLMEndpoint(fake_llm.url, "good", max_retries=0) as llm:
        result = evaluate_ask(photo_engine, cases, llm=llm, k=4)
    assert result.model == "good" and result.n == 4
    # k=4 of four photos: everything is retrieved.
    assert result.retrieval_recall == 1.0 and result.invalid_citations == 4
    for case, score in zip(cases, result.cases):
        assert score.cited == score.retrieved[:2]  # [1] and [2] are the two best
        hits = len(case.ids & set(score.cited))
        assert score.citation_precision == hits / 2
        assert score.citation_recall == hits / len(case.ids)
    expected_precision = sum(c.citation_precision for c in result.cases) / 4
    assert result.citation_precision == pytest.approx(expected_precision)
    with LLMEndpoint(fake_llm.url, "good", max_retries=0) as llm:
        fake_llm.reply = "No idea."
        silent = evaluate_ask(photo_engine, cases, llm=llm, k=1)
    assert silent.uncited == 4 and silent.citation_precision is None
    assert silent.citation_recall == 0.0 and 0.0 <= silent.retrieval_recall <= 1.0


def test_zsv_eval_ask_compares_models(index_dir, fake_llm, capsys, tmp_path):
    base = ["eval", "ask", "--data", str(CASES), "--index", str(index_dir), "--llm-url",
            fake_llm.url, "--llm-model", "good", "--llm-model", "slow"]  # fmt: skip
    prompt = tmp_path / "terse.txt"
    prompt.write_text("Photos: {photos}\nQ: {question}\nCite [n].", encoding="utf-8")
    assert main([*base, "--prompt-file", str(prompt)]) == 0
    out = capsys.readouterr().out
    assert "good + terse.txt" in out and "slow + terse.txt" in out
    assert "retrieval recall@4" in out and "citation precision" in out
    assert len(fake_llm.requests) == 8
    assert fake_llm.requests[0]["body"]["messages"][0]["content"][0]["text"].startswith("Photos:")
    assert main([*base[:-2], "--json", "-k", "2"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["model"] == "good" and result["k"] == 2 and len(result["cases"]) == 4


def test_bad_case_files(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "ids": ["a"]}\n{"question": "q2", "ids": []}\n')
    with pytest.raises(InvalidInputError, match=r"bad.jsonl:2: needs 'ids'"):
        read_ask_cases(bad)
    bad.write_text("not json\n")
    with pytest.raises(InvalidInputError, match=r":1: not JSON"):
        read_ask_cases(bad)
    bad.write_text("\n")
    with pytest.raises(InvalidInputError, match="no case"):
        read_ask_cases(bad)
    assert main(["eval", "ask", "--data", str(tmp_path / "none.jsonl"), "--index", "x"]) == 1
