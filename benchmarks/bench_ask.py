"""engine.ask: where the time of one question goes (retrieve, encode photos, model).

    python benchmarks/bench_ask.py [--model M] [--photos DIR] [--llm-url URL --llm-model NAME]
                                   [--questions 10] [--max-images 4] [--max-tokens 32]

Indexes the photos (default: scikit-image's sample photos) in memory with ``--model``
(default the tiny random SigLIP, built offline) and asks ``--questions`` questions of a
vision-language model: the endpoint given, else ``transformers serve`` running the tiny
random LLaVA on loopback (started here). Prints the median and p95 of each part of
``answer.timings`` and each part's share of the total, per run; the same run's numbers
are the only ones compared. With the tiny models the model's share is small-model
decoding on this CPU, not what a real VLM costs: pass a real endpoint for that.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report

QUESTIONS = [
    "Which photo shows a cat?",
    "Is there a rocket launch?",
    "What is there to drink?",
    "Is anyone wearing a space suit?",
    "Which photos were taken outdoors?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="SigLIP checkpoint (default: tiny random, offline)")
    parser.add_argument("--photos", type=Path, help="a folder of photos (default: skimage's)")
    parser.add_argument("--llm-url", help="an OpenAI-compatible endpoint (default: tiny VLM)")
    parser.add_argument("--llm-model", help="its model")
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--max-images", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()

    import skimage

    from zeroshot_vision import Encoder, FaissStore, SearchEngine
    from zeroshot_vision._images import IMAGE_SUFFIXES
    from zeroshot_vision._llm import LLMEndpoint
    from zeroshot_vision.testing import TransformersServe, build_tiny_siglip, build_tiny_vlm

    work = Path(tempfile.mkdtemp(prefix="bench-ask-"))
    folder = args.photos or Path(skimage.__file__).parent / "data"
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    encoder = Encoder.from_pretrained(args.model or build_tiny_siglip(work / "siglip"))
    engine = SearchEngine(encoder, FaissStore(encoder.dim))
    engine.index_images(photos)

    server = None
    if args.llm_url is None:
        server = TransformersServe(build_tiny_vlm(work / "vlm")).start()
    try:
        url = args.llm_url or (server.base_url if server else None)
        with LLMEndpoint(url, args.llm_model, max_tokens=args.max_tokens) as llm:
            engine.ask(QUESTIONS[0], llm=llm, max_images=args.max_images)  # warm-up
            parts: dict[str, list[float]] = {"retrieve": [], "encode": [], "model": []}
            for i in range(args.questions):
                t = engine.ask(
                    QUESTIONS[i % len(QUESTIONS)], llm=llm, max_images=args.max_images
                ).timings
                parts["retrieve"].append(t.retrieve * 1000)
                parts["encode"].append(t.encode_images * 1000)
                parts["model"].append(t.model * 1000)
            model_name = llm.resolved_model()
    finally:
        if server is not None:
            server.stop()
    totals = [sum(values) for values in zip(*parts.values())]
    rows = [
        [
            name,
            statistics.median(values),
            _report.percentile(values, 0.95),
            statistics.median(values) / statistics.median(totals),
        ]
        for name, values in parts.items()
    ]
    rows.append(["total", statistics.median(totals), _report.percentile(totals, 0.95), 1.0])
    table = _report.table(
        f"engine.ask, {len(photos)} photos, {args.questions} questions, "
        f"{args.max_images} images of <=768 px each, answers <= {args.max_tokens} tokens, "
        f"encoder {encoder.model_name}, VLM {model_name}",
        ["part", "median ms", "p95 ms", "share of median total"],
        rows,
        raw=parts,
    )
    _report.write("ask", [table], arguments={k: str(v) for k, v in vars(args).items()})


if __name__ == "__main__":
    main()
