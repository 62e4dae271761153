"""``zsv ask``: a question answered by a vision-language model from the photos it retrieves."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from zeroshot_vision._cli.exits import EXIT_OK
from zeroshot_vision._cli.options import (
    add_index_option,
    add_model_options,
    positive_int_arg,
    positive_seconds_arg,
    probability_arg,
)
from zeroshot_vision._cli.output import interactive, say
from zeroshot_vision._text import printable_json

if TYPE_CHECKING:
    from zeroshot_vision._ask import Answer
    from zeroshot_vision._cli.options import Subcommands

__all__ = ["add_ask_command", "print_answer", "run_ask"]


def _images_arg(text: str) -> int:
    return 0 if text.strip() == "0" else int(positive_int_arg(text))


def add_ask_command(commands: Subcommands) -> None:
    """Register ``zsv ask``."""
    parser = commands.add_parser(
        "ask",
        help="ask a vision-language model about your photos; it cites the ones it used",
        description=(
            "Retrieve the photos that best match QUESTION and ask a vision-language model "
            "behind any OpenAI-compatible chat endpoint (OpenAI, Ollama, vLLM, LM Studio, "
            "llama.cpp, transformers serve) to answer from them, citing photos as [1], [2]. "
            "The endpoint: --llm-url or OPENAI_BASE_URL; the key: OPENAI_API_KEY (never on "
            "the command line); the model: --llm-model or ZSV_LLM_MODEL, else the one the "
            "endpoint serves. Needs the 'ask' extra."
        ),
    )
    parser.add_argument("question", help="the question, in words")
    add_index_option(parser)
    parser.add_argument("--llm-url", metavar="URL", help="the endpoint, up to /v1")
    parser.add_argument("--llm-model", metavar="NAME", help="the model, as the endpoint names it")
    parser.add_argument(
        "-k", type=positive_int_arg, default=4, metavar="N", help="photos to retrieve (default 4)"
    )
    parser.add_argument(
        "--max-images",
        type=_images_arg,
        default=4,
        metavar="N",
        help="at most N photos go to the model (default 4; 0: their descriptions only)",
    )
    parser.add_argument(
        "--image-side",
        type=positive_int_arg,
        default=768,
        metavar="PX",
        help="photos are scaled down to PX on their long side (default 768)",
    )
    parser.add_argument(
        "--min-probability",
        type=probability_arg,
        default=0.001,
        metavar="P",
        help="photos less likely to match are not shown (default 0.001)",
    )
    parser.add_argument(
        "--answer-anyway",
        action="store_true",
        help="ask the model even when no photo matches well enough",
    )
    parser.add_argument("--filter", metavar="JSON", help="metadata filter of the retrieval")
    parser.add_argument(
        "--prompt-file", metavar="FILE", help="a prompt template with {question} and {photos}"
    )
    parser.add_argument(
        "--max-tokens", type=positive_int_arg, default=512, metavar="N", help="longest answer"
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds_arg,
        default=120.0,
        metavar="SECONDS",
        help="wait this long for an answer (streamed: for each next piece; default 120)",
    )
    parser.add_argument("--stream", action="store_true", help="print the answer as it comes")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    add_model_options(parser, model_help="a local copy of the index's model to load instead")
    parser.set_defaults(handler=run_ask)


def run_ask(args: argparse.Namespace) -> int:
    """``zsv ask``: retrieve, ask, print the answer and the photos it cites."""
    from pathlib import Path

    from zeroshot_vision._cli.model_choice import check_index_model
    from zeroshot_vision._cli.search import parse_filter
    from zeroshot_vision._engine import SearchEngine
    from zeroshot_vision._index import IndexFolder
    from zeroshot_vision._llm import LLMEndpoint

    query_filter = parse_filter(args.filter)
    options = {
        "filter": query_filter,
        "min_probability": args.min_probability,
        "max_images": args.max_images,
        "image_side": args.image_side,
        "answer_without_photos": args.answer_anyway,
    }
    if args.prompt_file:
        from zeroshot_vision._ask import check_prompt

        options["prompt"] = check_prompt(Path(args.prompt_file).read_text(encoding="utf-8"))
    model = check_index_model(IndexFolder.open(args.index), args)
    llm = LLMEndpoint(
        args.llm_url, args.llm_model, max_tokens=args.max_tokens, timeout=args.timeout
    )
    with (
        llm,
        SearchEngine.open(
            args.index, model=model, device=args.device, dtype=args.dtype, progress=interactive()
        ) as engine,
    ):
        if args.stream and not args.json:
            answer = None
            for part in engine.ask_stream(args.question, k=args.k, llm=llm, **options):
                if isinstance(part, str):
                    sys.stdout.write(part)
                    sys.stdout.flush()
                else:
                    answer = part
            assert answer is not None
            if answer.status == "answered":
                sys.stdout.write("\n")
            print_answer(answer, text=answer.status != "answered")
        else:
            answer = engine.ask(args.question, k=args.k, llm=llm, **options)
            if args.json:
                print(printable_json(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False)))
            else:
                print_answer(answer)
    return EXIT_OK


def print_answer(answer: Answer, *, text: bool = True) -> None:
    """The answer's text, then the photos it cites (or was shown), one per line."""
    if text:
        say(answer.text)
    if answer.status != "answered":
        return
    label = "cited" if answer.cited else "shown (the answer cites none)"
    say(f"\n{label}:")
    for photo_id in answer.sources:
        number = answer.shown.index(photo_id) + 1
        hit = answer.hit(photo_id)
        path = hit.metadata.get("path") if hit is not None else None
        probability = (
            f"  p={hit.probability:.3f}" if hit is not None and hit.probability is not None else ""
        )
        say(f"  [{number}] {photo_id}{probability}" + (f"  {path}" if path else ""))
    if answer.invalid_citations:
        markers = ", ".join(f"[{n}]" for n in answer.invalid_citations)
        say(f"zsv: warning: the answer cites {markers}, which name no photo shown", sys.stderr)
    if answer.usage is not None:
        say(
            f"({answer.model}: {answer.usage.prompt_tokens} prompt + "
            f"{answer.usage.completion_tokens} answer tokens; retrieve "
            f"{answer.timings.retrieve:.2f} s, images {answer.timings.encode_images:.2f} s, "
            f"model {answer.timings.model:.2f} s)",
            sys.stderr,
        )
