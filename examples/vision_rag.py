"""Vision RAG: a question, the photos that answer it, and a chat message for a vision model.

The retrieval half of a multimodal RAG application. A LangChain retriever over a
zeroshot-vision index finds the photos that best match the question, each with SigLIP's
calibrated probability that it matches; they go into one OpenAI-compatible chat message
(``image_url`` parts holding ``data:`` URLs), ready for any vision-language model served
behind that API (GPT-4o, a local vLLM or llama.cpp server, ...). No model is called here:
the message is printed as JSON, to send with the client of your choice::

    python examples/vision_rag.py --index my-index "Which photo shows a rocket launch?"
    python examples/vision_rag.py --photos PHOTOS "Is there a cat?"     # index in memory
    ZSV_MODEL=tiny python examples/vision_rag.py --photos PHOTOS "..."  # offline (random)

Then, for example, ``openai.OpenAI(base_url=...).chat.completions.create(model=...,
messages=[message])``. Needs the ``langchain`` extra.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from zeroshot_vision import IMAGE_SUFFIXES, SearchEngine, load_image
from zeroshot_vision.integrations.langchain import ZeroshotVisionVectorStore

MAX_SIDE = 768
"""Photos are scaled down to this many pixels on their long side: vision models work at
about this size, and a full-size photo would make the message megabytes long."""


def retrieve(store: ZeroshotVisionVectorStore, question: str, k: int = 3) -> list[Any]:
    """The ``k`` photos that best match ``question``, as LangChain documents."""
    retriever = store.as_retriever(search_kwargs={"k": k})
    return list(retriever.invoke(question))


def data_url(path: str, max_side: int = MAX_SIDE) -> str:
    """The photo at ``path`` as a ``data:image/jpeg;base64,...`` URL, scaled down."""
    image = load_image(path)  # upright (EXIF orientation) and RGB, as it was indexed
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def vision_message(question: str, documents: Sequence[Any]) -> dict[str, Any]:
    """One OpenAI-compatible user message: the question, then each photo with its odds."""
    lines = [
        f"Photo {i}: {Path(doc.metadata['path']).name}, probability it matches "
        f"{doc.metadata.get('probability', float('nan')):.3f}"
        for i, doc in enumerate(documents, 1)
    ]
    prompt = (
        "Answer the question using only the photos below, which an image search "
        "retrieved for it; say which photo supports your answer.\n\n"
        f"Question: {question}\n\n" + "\n".join(lines)
    )
    content: list[dict[str, Any]] = [{"type": "text", "text": prompt}]
    for doc in documents:
        content.append({"type": "image_url", "image_url": {"url": data_url(doc.metadata["path"])}})
    return {"role": "user", "content": content}


def main() -> None:
    parser = argparse.ArgumentParser(description="Build a Vision-RAG chat message.")
    parser.add_argument("question")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--index", type=Path, help="an index folder (zsv index)")
    source.add_argument("--photos", type=Path, help="a folder of photos, indexed in memory")
    parser.add_argument("-k", type=int, default=3, help="how many photos (default 3)")
    args = parser.parse_args()

    if args.index is not None:
        engine = SearchEngine.open(args.index)
    else:
        from zeroshot_vision import Encoder, FaissStore

        encoder = Encoder.from_pretrained()  # $ZSV_MODEL (or "tiny"), else the default SigLIP
        engine = SearchEngine(encoder, FaissStore(encoder.dim))
        photos = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        engine.index_images(photos)
    with ZeroshotVisionVectorStore(engine=engine) as store:
        documents = retrieve(store, args.question, k=args.k)
        print(json.dumps(vision_message(args.question, documents), indent=2))


if __name__ == "__main__":
    main()
