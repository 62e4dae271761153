"""Evaluation: how well a checkpoint classifies and retrieves, on your own data.

* :mod:`~zeroshot_vision.eval._metrics`: top-K accuracy, Recall@K, MRR, reliability
  tables and probability thresholds, in pure numpy (ties count against the model).
* :mod:`~zeroshot_vision.eval._labelled_data`: labelled image folders, (image, caption) TSV
  files and Unsplash Lite's own relevance judgments.
* :mod:`~zeroshot_vision.eval._run`: embed a dataset with an encoder and score it.
* :mod:`~zeroshot_vision.eval._report`: Markdown, JSON and plots.

The same runs back ``zsv eval classify`` and ``zsv eval retrieval``. Example::

    from zeroshot_vision import Encoder
    from zeroshot_vision.eval import evaluate_classification, read_image_folder

    encoder = Encoder.from_pretrained("google/siglip-base-patch16-224")
    result = evaluate_classification(encoder, read_image_folder("pets/"))
    print(result.top1, result.calibration.threshold)

Importing this package loads numpy only; torch comes with the encoder and matplotlib
with the first plot.
"""

from zeroshot_vision.eval._ask import evaluate_ask, read_ask_cases
from zeroshot_vision.eval._hybrid import evaluate_hybrid
from zeroshot_vision.eval._labelled_data import (
    ImageFolderDataset,
    LabeledImage,
    Pair,
    PairsDataset,
    Skipped,
    read_image_folder,
    read_multilingual_pairs,
    read_pairs,
    read_pairs_tsv,
    read_unsplash_pairs,
)
from zeroshot_vision.eval._metrics import ReliabilityBin, ThresholdPoint
from zeroshot_vision.eval._report import (
    write_classification_report,
    write_retrieval_report,
)
from zeroshot_vision.eval._run import (
    DEFAULT_TEMPLATES,
    Calibration,
    ClassificationResult,
    ClassScore,
    ConfusedPair,
    RetrievalResult,
    RetrievalScores,
    embed_labels,
    evaluate_classification,
    evaluate_retrieval,
    score_classification,
    score_retrieval,
)

__all__ = [
    "DEFAULT_TEMPLATES",
    "Calibration",
    "ClassScore",
    "ClassificationResult",
    "ConfusedPair",
    "ImageFolderDataset",
    "LabeledImage",
    "Pair",
    "PairsDataset",
    "ReliabilityBin",
    "RetrievalResult",
    "RetrievalScores",
    "Skipped",
    "ThresholdPoint",
    "embed_labels",
    "evaluate_ask",
    "evaluate_classification",
    "evaluate_hybrid",
    "evaluate_retrieval",
    "read_ask_cases",
    "read_image_folder",
    "read_multilingual_pairs",
    "read_pairs",
    "read_pairs_tsv",
    "read_unsplash_pairs",
    "score_classification",
    "score_retrieval",
    "write_classification_report",
    "write_retrieval_report",
]
