"""``zsv models``: the model presets, with the facts a user picks one by."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from zeroshot_vision._cli.exits import EXIT_OK
from zeroshot_vision._cli.output import print_json, say

if TYPE_CHECKING:
    from zeroshot_vision._cli.options import Subcommands
    from zeroshot_vision._presets import ModelPreset

__all__ = ["add_models_command", "run_models"]


def add_models_command(commands: Subcommands) -> None:
    """Register ``zsv models``."""
    parser = commands.add_parser(
        "models",
        help="list the model presets (languages, size, quality)",
        description=(
            "The named checkpoints --model and ZSV_MODEL accept, with their languages, "
            "embedding size, input size, download size and published quality. A hub id "
            "(org/name) or a local folder works as well. For photos searched in other "
            "languages than English, pick a multilingual preset such as siglip2-so400m."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.set_defaults(handler=run_models)


def _row(preset: ModelPreset, default: str) -> dict[str, Any]:
    return {
        "name": preset.name,
        "hub_id": preset.hub_id,
        "default": preset.hub_id == default,
        "family": preset.family,
        "languages": preset.language_label,
        "dim": preset.dim,
        "image_size": preset.image_size,
        "download_gb": preset.download_gb,
        "quality": preset.quality,
        "note": preset.note,
    }


def run_models(args: argparse.Namespace) -> int:
    """``zsv models``: a table of presets (``*`` marks the model used when none is named)."""
    from zeroshot_vision._models import default_model, resolve_model
    from zeroshot_vision._presets import PRESETS

    default = resolve_model(default_model()) if default_model() != "tiny" else "tiny"
    rows = [_row(preset, default) for preset in PRESETS]
    if args.json:
        print_json(rows)
        return EXIT_OK
    header = ("", "name", "languages", "dim", "image", "download", "hub id")
    cells = [header] + [
        (
            "*" if row["default"] else "",
            row["name"],
            row["languages"],
            str(row["dim"]),
            f"{row['image_size']}px",
            f"~{row['download_gb']:g} GB",
            row["hub_id"],
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    for line in cells:
        say("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    say("")
    for row in rows:
        say(f"{row['name']}: {row['note']}. {row['quality']}.")
    say("")
    say("* the default (ZSV_MODEL or --model changes it). Non-English collections: siglip2-so400m.")
    return EXIT_OK
