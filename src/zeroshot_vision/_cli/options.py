"""Argument types and the options several ``zsv`` commands share.

A bad number is a usage error (exit 2, argparse's message naming the option), not a
library error: each type converts the text, then runs the library's own check, so the
rule lives once in the library and the CLI only rewords it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zeroshot_vision._checks import (
    non_negative_int,
    non_negative_seconds,
    positive_int,
    probability,
)
from zeroshot_vision._errors import InvalidInputError

if TYPE_CHECKING:
    from typing import TypeAlias

    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = [
    "add_backend_options",
    "add_device_options",
    "add_index_option",
    "add_model_options",
    "add_wait_option",
    "argparse_number",
    "non_negative_float_arg",
    "non_negative_int_arg",
    "positive_int_arg",
    "positive_seconds_arg",
    "precision_arg",
    "probability_arg",
    "seconds_arg",
    "template_arg",
    "threshold_arg",
    "weight_arg",
]


def argparse_number(check: Callable[[Any, str], Any], convert: Callable[[str], Any]) -> Any:
    """An argparse ``type=`` that converts and checks, so bad numbers are usage errors."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"invalid {convert.__name__} value: {text!r}") from exc
        try:
            return check(value, "the value")
        except InvalidInputError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace("the value ", "")) from exc

    return parse


def _positive_seconds(value: float, name: str) -> float:
    if not non_negative_seconds(value, name) > 0:
        raise InvalidInputError(f"{name} must be a positive number of seconds, got {value}")
    return value


def _threshold(value: float, name: str) -> float:
    from zeroshot_vision._near_duplicates import check_threshold

    return check_threshold(value)


def _weight(value: float, name: str) -> float:
    from zeroshot_vision._query import check_weight

    return check_weight(value)


def _non_negative(value: float, name: str) -> float:
    if not value >= 0 or value == float("inf"):
        raise InvalidInputError(f"{name} must be a number of 0 or more, got {value}")
    return value


positive_int_arg = argparse_number(positive_int, int)
non_negative_float_arg = argparse_number(_non_negative, float)
"""``zsv index --gpus-per-actor``: 0, a fraction of a GPU, or more."""
non_negative_int_arg = argparse_number(non_negative_int, int)
seconds_arg = argparse_number(non_negative_seconds, float)
positive_seconds_arg = argparse_number(_positive_seconds, float)
probability_arg = argparse_number(probability, float)
threshold_arg = argparse_number(_threshold, float)
"""``zsv duplicates --threshold``: a cosine in (0, 1]."""
weight_arg = argparse_number(_weight, float)
"""``zsv search --image-weight``: a query part's weight."""


def template_arg(text: str) -> str:
    """``zsv eval classify --template``: a prompt template with one ``{}``."""
    from zeroshot_vision.eval._run import check_template

    try:
        return check_template(text)
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def precision_arg(text: str) -> float:
    """``zsv eval classify --precision``: a number above 0 and at most 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, got {text}")
    return value


def add_index_option(parser: argparse.ArgumentParser) -> None:
    """``--index INDEX_DIR``, the index folder a command reads or writes (required)."""
    parser.add_argument("--index", required=True, metavar="INDEX_DIR", help="the index folder")


def add_wait_option(parser: argparse.ArgumentParser) -> None:
    """``--wait SECONDS``: how long a writing command waits for another writer (default 0)."""
    parser.add_argument(
        "--wait",
        type=seconds_arg,
        default=0.0,
        metavar="SECONDS",
        help="if another process is writing to the index, wait up to SECONDS for it to "
        "finish (default 0: fail at once, naming that process)",
    )


def add_device_options(parser: argparse.ArgumentParser, *, dtype: bool = True) -> None:
    """``--device`` (and ``--dtype``) for a command that loads a model."""
    parser.add_argument(
        "--device", metavar="D", help="torch device: cpu, cuda, cuda:1, mps (default: best)"
    )
    if dtype:
        parser.add_argument(
            "--dtype", metavar="T", help="torch dtype: float32, bfloat16, float16 (default: auto)"
        )


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--precision``: the encoder backend of a command on an index."""
    parser.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default=None,
        help="where the model runs: torch (default), or onnx: ONNX Runtime on the CPU, "
        "exported once and cached beside the model (pip install "
        "'zeroshot-vision[onnx]'); for an existing index, default: the index's own",
    )
    parser.add_argument(
        "--precision",
        choices=("float32", "int8"),
        default=None,
        help="the onnx backend's precision: float32 (default) or int8 (about 2x faster "
        "images on a CPU, vectors at a cosine of about 0.999)",
    )


def add_model_options(parser: argparse.ArgumentParser, *, model_help: str) -> None:
    """``--model`` (one checkpoint) with ``--device`` and ``--dtype``."""
    parser.add_argument("--model", metavar="M", help=model_help)
    add_device_options(parser)
