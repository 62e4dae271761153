"""Embedding zeroshot-vision in another program: tag a folder of photos with labels.

``tag_folder`` is the kind of function a photo manager or a data pipeline would call: it
takes an encoder that the host program built (and may reuse) and returns, for each photo,
the labels whose SigLIP probability clears a threshold. ``Encoder.classify_many`` does the
work: labels are embedded once, photos stream through the model in batches, unreadable
files are reported instead of stopping the run. No index and no store are needed. Run it
as a script to print tags as tab-separated lines::

    python examples/tag_folder.py PHOTOS --labels "a dog,a cat,a beach,food,a city at night"
    ZSV_MODEL=tiny python examples/tag_folder.py PHOTOS --labels "a dog,a cat"   # offline
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from zeroshot_vision import IMAGE_SUFFIXES, ClassifyReport, Encoder


def tag_folder(
    folder: Path, labels: Sequence[str], *, encoder: Encoder, batch_size: int = 16
) -> ClassifyReport:
    """Score ``labels`` against every image under ``folder`` (recursively).

    The probabilities are independent per label (SigLIP's sigmoid), so a photo can clear
    a threshold for several labels, or for none: ``result.likely(threshold)``.
    """
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return encoder.classify_many(paths, labels, batch_size=batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description="Tag a folder of photos with zero-shot labels.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--labels", required=True, help="comma-separated labels")
    parser.add_argument("--threshold", type=float, default=0.1)
    args = parser.parse_args()

    encoder = Encoder.from_pretrained()  # $ZSV_MODEL (or "tiny"), else the default SigLIP
    report = tag_folder(args.folder, args.labels.split(","), encoder=encoder)
    for result in report.results:
        tags = ", ".join(f"{t.label} ({t.probability:.2f})" for t in result.likely(args.threshold))
        print(f"{result.source}\t{tags or '-'}")
    for failure in report.failed:
        print(f"{failure.source}\t(unreadable: {failure.reason})")


if __name__ == "__main__":
    main()
