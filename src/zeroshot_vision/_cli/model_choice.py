"""Which model a command that reads an index was asked for, checked against the index's.

An index's vectors only compare with queries from the model that made them. ``--model``
and ``$ZSV_MODEL`` name a model; for a command on an existing index, one that differs from
the index's is a one-line error naming both, never a silent switch (``ZSV_MODEL=tiny`` once,
then the default model, must not reuse the tiny model's index).
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from zeroshot_vision._errors import InvalidInputError

if TYPE_CHECKING:
    from zeroshot_vision._index.folder import IndexFolder

__all__ = ["check_index_model", "requested_model"]


def requested_model(args: argparse.Namespace) -> tuple[str, str] | None:
    """The model asked for and where: ``(name, "--model")``, ``(name, "ZSV_MODEL")``, or None."""
    from zeroshot_vision._models import MODEL_ENV

    if getattr(args, "model", None):
        return str(args.model), "--model"
    from_env = os.environ.get(MODEL_ENV, "").strip()
    if from_env:
        return from_env, MODEL_ENV
    return None


def check_index_model(folder: IndexFolder, args: argparse.Namespace) -> str | None:
    """The model to pass to the engine for ``folder``: ``--model`` when it is the index's.

    ``$ZSV_MODEL`` only picks the model of a new index; for an existing one it is checked
    and then left out, so that the engine loads the index's own checkpoint.

    Raises:
        InvalidInputError: ``--model`` or ``$ZSV_MODEL`` names another model.
    """
    from zeroshot_vision._models import locate_checkpoint, same_checkpoint

    asked = requested_model(args)
    if asked is None:
        return None
    name, where = asked
    locate_checkpoint(name)  # a folder that does not exist is that problem, said so
    recorded = folder.manifest.model
    if same_checkpoint(name, recorded):
        return name if where == "--model" else None
    drop = "drop --model" if where == "--model" else "unset ZSV_MODEL"
    raise InvalidInputError(
        f"{folder.path} was indexed with model {recorded}, but {where} asks for {name}; "
        f"{drop} to use the index's model, or index into another folder to re-encode with "
        "this one"
    )
