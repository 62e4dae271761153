"""Evaluate ``ask``: does retrieval find the photos that answer, and does the model cite them?

A case is a question and the ids of the photos that answer it, one JSON object per line::

    {"question": "Which photo shows a cat?", "ids": ["chelsea"]}

For each case :func:`evaluate_ask` asks the question (:func:`zeroshot_vision._ask.ask`)
and scores:

* **retrieval recall@k**: the share of the expected photos among the k retrieved;
* **citation recall**: the share of the expected photos the answer cites;
* **citation precision**: the share of the cited photos that are expected (over answers
  that cite something; an answer citing none counts in ``uncited`` instead);
* invalid citations (markers naming no photo shown), tokens and seconds.

Run it once per model and prompt to compare them on the same questions (``zsv eval ask``
does, side by side): retrieval recall is the same for all, the rest is the model's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._errors import DatasetNotFoundError, InvalidInputError

if TYPE_CHECKING:
    from zeroshot_vision._ask import Answer
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._llm import LLMEndpoint

__all__ = [
    "AskCase",
    "AskCaseScore",
    "AskEvalResult",
    "evaluate_ask",
    "read_ask_cases",
    "results_json",
    "score_answer",
]


@dataclass(frozen=True, kw_only=True)
class AskCase:
    """A question and the ids of the photos that answer it."""

    question: str
    ids: frozenset[str]


def read_ask_cases(path: str | os.PathLike[str]) -> list[AskCase]:
    """The cases of a JSONL file: ``{"question": str, "ids": [str, ...]}`` per line.

    Blank lines are skipped.

    Raises:
        DatasetNotFoundError: No such file.
        InvalidInputError: A line that is not such an object (the message names the line),
            or no case at all.
    """
    file = Path(path)
    if not file.is_file():
        raise DatasetNotFoundError(f"no ask cases file at {file}")
    cases = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{file}:{number}: not JSON ({exc.msg})") from exc
        question = row.get("question") if isinstance(row, dict) else None
        ids = row.get("ids") if isinstance(row, dict) else None
        if not isinstance(question, str) or not question.strip():
            raise InvalidInputError(f"{file}:{number}: needs a non-empty string 'question'")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise InvalidInputError(f"{file}:{number}: needs 'ids', a non-empty list of strings")
        cases.append(AskCase(question=question.strip(), ids=frozenset(ids)))
    if not cases:
        raise InvalidInputError(f"{file} holds no case")
    return cases


@dataclass(frozen=True, kw_only=True)
class AskCaseScore:
    """One case's outcome."""

    question: str
    expected: tuple[str, ...]
    retrieved: tuple[str, ...]
    cited: tuple[str, ...]
    invalid_citations: tuple[str, ...]
    retrieval_recall: float
    citation_recall: float
    citation_precision: float | None
    seconds: float
    tokens: int | None
    text: str


@dataclass(frozen=True, kw_only=True)
class AskEvalResult:
    """Scores of one model and prompt over every case (means over cases)."""

    model: str
    prompt: str | None
    k: int
    cases: tuple[AskCaseScore, ...]

    @property
    def n(self) -> int:
        """How many cases."""
        return len(self.cases)

    @property
    def retrieval_recall(self) -> float:
        """Mean share of the expected photos retrieved in the top k."""
        return sum(c.retrieval_recall for c in self.cases) / self.n

    @property
    def citation_recall(self) -> float:
        """Mean share of the expected photos the answers cite."""
        return sum(c.citation_recall for c in self.cases) / self.n

    @property
    def citation_precision(self) -> float | None:
        """Mean share of cited photos that are expected, over answers citing any."""
        scored = [c.citation_precision for c in self.cases if c.citation_precision is not None]
        return sum(scored) / len(scored) if scored else None

    @property
    def uncited(self) -> int:
        """Answers that cite no photo."""
        return sum(1 for c in self.cases if not c.cited)

    @property
    def invalid_citations(self) -> int:
        """Markers, over all answers, that named no photo shown."""
        return sum(len(c.invalid_citations) for c in self.cases)

    @property
    def seconds(self) -> float:
        """Mean seconds per question (retrieval, images and model)."""
        return sum(c.seconds for c in self.cases) / self.n

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary with the per-case rows."""
        return {
            "model": self.model,
            "prompt": self.prompt,
            "k": self.k,
            "n": self.n,
            "retrieval_recall": self.retrieval_recall,
            "citation_recall": self.citation_recall,
            "citation_precision": self.citation_precision,
            "uncited": self.uncited,
            "invalid_citations": self.invalid_citations,
            "seconds": self.seconds,
            "cases": [
                {
                    "question": c.question,
                    "expected": list(c.expected),
                    "retrieved": list(c.retrieved),
                    "cited": list(c.cited),
                    "invalid_citations": list(c.invalid_citations),
                    "retrieval_recall": c.retrieval_recall,
                    "citation_recall": c.citation_recall,
                    "citation_precision": c.citation_precision,
                    "seconds": c.seconds,
                    "tokens": c.tokens,
                    "text": c.text,
                }
                for c in self.cases
            ],
        }


def score_answer(case: AskCase, answer: Answer) -> AskCaseScore:
    """Score one answer against its case."""
    retrieved = tuple(h.id for h in answer.hits)
    cited = answer.citations
    hit_cited = sum(1 for i in cited if i in case.ids)
    return AskCaseScore(
        question=case.question,
        expected=tuple(sorted(case.ids)),
        retrieved=retrieved,
        cited=cited,
        invalid_citations=answer.invalid_citations,
        retrieval_recall=len(case.ids & set(retrieved)) / len(case.ids),
        citation_recall=hit_cited / len(case.ids),
        citation_precision=hit_cited / len(cited) if cited else None,
        seconds=answer.timings.total,
        tokens=answer.usage.total_tokens if answer.usage is not None else None,
        text=answer.text,
    )


def evaluate_ask(
    engine: SearchEngine,
    cases: Sequence[AskCase],
    *,
    llm: LLMEndpoint,
    k: int = 4,
    prompt: str | None = None,
    **options: Any,
) -> AskEvalResult:
    """Ask every case's question and score the answers (see the module's description).

    Args:
        engine: The index to ask.
        cases: From :func:`read_ask_cases`.
        llm: The endpoint and model to evaluate.
        k: Photos retrieved per question.
        prompt: A prompt template (default :data:`~zeroshot_vision._ask.DEFAULT_PROMPT`).
        **options: More arguments of :func:`zeroshot_vision._ask.ask` (``max_images``, ...).

    Raises:
        InvalidInputError: No case.
        LLMError: The endpoint failed (the run stops: a comparison with holes misleads).
    """
    from zeroshot_vision._ask import ask

    if not cases:
        raise InvalidInputError("no case to evaluate")
    if prompt is not None:
        options["prompt"] = prompt
    scores = [
        score_answer(case, ask(engine, case.question, k=k, llm=llm, **options)) for case in cases
    ]
    return AskEvalResult(model=llm.resolved_model(), prompt=prompt, k=k, cases=tuple(scores))


def results_json(results: Sequence[AskEvalResult]) -> list[Mapping[str, Any]]:
    """Several results as JSON-ready dicts."""
    return [r.to_dict() for r in results]
