"""Embedding zeroshot-vision in another program: tag a folder of photos with labels.

``tag_folder`` is the kind of function a photo manager or a data pipeline would call: it
takes an encoder that the host program built (and may reuse), embeds the label texts
once, streams the photos through the model in batches, and returns the labels whose
SigLIP probability clears a threshold. No index and no store are needed; unreadable files
are reported, not fatal. Run it as a script to print tags as tab-separated lines::

    python examples/tag_folder.py PHOTOS --labels "a dog,a cat,a beach,food,a city at night"
    ZSV_MODEL=tiny python examples/tag_folder.py PHOTOS --labels "a dog,a cat"   # offline
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zeroshot_vision import Encoder, ImageLoadError, LabelScore
from zeroshot_vision.images import IMAGE_SUFFIXES


@dataclass(frozen=True)
class Tagged:
    """The tags of one photo (best first), or why it could not be read."""

    path: Path
    tags: tuple[LabelScore, ...] = ()
    error: str | None = None


def tag_folder(
    folder: Path,
    labels: Sequence[str],
    *,
    encoder: Encoder,
    threshold: float = 0.1,
    batch_size: int = 16,
) -> list[Tagged]:
    """Tag every image under ``folder`` with the ``labels`` that fit it.

    Args:
        folder: Searched recursively for image files.
        labels: Candidate tags, as short descriptions ("a dog", "a beach at sunset").
        encoder: A loaded encoder; the caller owns it (load once, tag many folders).
        threshold: The lowest SigLIP probability for a label to count as a tag. The
            probabilities are independent per label, so a photo can get several tags, or
            none.
        batch_size: Photos per forward pass.
    """
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    label_vectors = encoder.encode_texts(labels)  # once, for every photo
    results: list[Tagged] = []
    for start in range(0, len(paths), batch_size):
        batch = paths[start : start + batch_size]
        try:
            image_vectors = encoder.encode_images(batch)
        except ImageLoadError:
            # One bad file spoils encode_images for its batch: redo that batch one by one.
            results.extend(_tag_one_by_one(batch, labels, label_vectors, encoder, threshold))
            continue
        for path, vector in zip(batch, image_vectors):
            results.append(Tagged(path, _tags(vector, labels, label_vectors, encoder, threshold)))
    return results


def _tags(
    image_vector: np.ndarray,
    labels: Sequence[str],
    label_vectors: np.ndarray,
    encoder: Encoder,
    threshold: float,
) -> tuple[LabelScore, ...]:
    cosines = label_vectors @ image_vector
    probabilities = encoder.probability(cosines)
    order = np.argsort(-cosines)
    return tuple(
        LabelScore(labels[i], float(probabilities[i]), float(cosines[i]))
        for i in order
        if probabilities[i] >= threshold
    )


def _tag_one_by_one(
    batch: Sequence[Path],
    labels: Sequence[str],
    label_vectors: np.ndarray,
    encoder: Encoder,
    threshold: float,
) -> list[Tagged]:
    out = []
    for path in batch:
        try:
            (vector,) = encoder.encode_images([path])
        except ImageLoadError as exc:
            out.append(Tagged(path, error=exc.reason))
        else:
            out.append(Tagged(path, _tags(vector, labels, label_vectors, encoder, threshold)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Tag a folder of photos with zero-shot labels.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--labels", required=True, help="comma-separated labels")
    parser.add_argument("--threshold", type=float, default=0.1)
    args = parser.parse_args()

    model = os.environ.get("ZSV_MODEL", "google/siglip-so400m-patch14-384")
    if model == "tiny":  # a tiny random model: meaningless tags, real plumbing
        from zeroshot_vision.testing import build_tiny_siglip

        model = str(build_tiny_siglip(Path(tempfile.mkdtemp()) / "tiny-siglip"))
    encoder = Encoder.from_pretrained(model)
    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    for item in tag_folder(args.folder, labels, encoder=encoder, threshold=args.threshold):
        if item.error:
            print(f"{item.path}\t(unreadable: {item.error})")
        else:
            tags = ", ".join(f"{t.label} ({t.probability:.2f})" for t in item.tags)
            print(f"{item.path}\t{tags or '-'}")


if __name__ == "__main__":
    main()
