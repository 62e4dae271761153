"""``zsv index --parquet FILE`` and ``zsv index --dataset SPEC``: the source kinds that are
not folders.

A Parquet export carries its vectors (nothing is encoded: it is
:func:`~zeroshot_vision.ingest._exchange.import_index`); a Hugging Face dataset is encoded
like a folder (:func:`~zeroshot_vision.integrations.hf_datasets.index_dataset`,
incremental by id). Both go through the one ingest pipeline.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from zeroshot_vision._cli.exits import EXIT_OK
from zeroshot_vision._cli.output import interactive, print_json, say
from zeroshot_vision._errors import InvalidInputError

__all__ = ["add_source_kind_options", "run_source_kind"]


def add_source_kind_options(parser: argparse.ArgumentParser) -> None:
    """``--parquet`` and ``--dataset`` (with its columns), instead of SOURCE folders."""
    group = parser.add_argument_group(
        "other sources (instead of SOURCE folders)",
        "a Parquet export of vectors (nothing encoded; extra 'parquet'), or a Hugging Face "
        "dataset of images (extra 'datasets')",
    )
    kinds = group.add_mutually_exclusive_group()
    kinds.add_argument(
        "--parquet",
        metavar="FILE",
        help="add the vectors of FILE (zsv export's format: id, vector, metadata); the "
        "vectors must come from the index's model",
    )
    kinds.add_argument(
        "--dataset",
        metavar="PATH_OR_NAME[:SPLIT]",
        help="a dataset folder saved with save_to_disk, or a name datasets.load_dataset "
        "finds; :SPLIT picks a split (needed when there are several)",
    )
    group.add_argument(
        "--image-column", default="image", metavar="COL", help="--dataset: images (default image)"
    )
    group.add_argument(
        "--id-column",
        metavar="COL",
        help="--dataset: ids (default: the row's position, stable while the order is)",
    )
    group.add_argument(
        "--metadata-column",
        action="append",
        metavar="COL",
        help="--dataset: a column stored as metadata (repeatable; default every other column)",
    )


def run_source_kind(
    args: argparse.Namespace,
    *,
    open_engine: Callable[[argparse.Namespace, str | None], tuple[Any, Any]],
    checked_model: Callable[[argparse.Namespace], str | None],
    print_report: Callable[[Any, str | None], None],
) -> int | None:
    """Index ``--parquet`` or ``--dataset``; ``None`` when neither is given (a folder run).

    Args:
        args: ``zsv index``'s arguments.
        open_engine: The engine ``zsv index`` opens for a model, with the encoder it was
            handed (``None``: its own), as a folder run opens it.
        checked_model: ``--model``, checked against an existing index's.
        print_report: Prints a run's report.
    """
    if args.parquet is None and args.dataset is None:
        for flag in ("id_column", "metadata_column"):
            if getattr(args, flag) is not None:
                raise InvalidInputError(f"--{flag.replace('_', '-')} goes with --dataset")
        if args.image_column != "image":
            raise InvalidInputError("--image-column goes with --dataset")
        return None
    kind = "--parquet" if args.parquet is not None else "--dataset"
    folder_only = {
        "SOURCE": bool(args.source),
        "--images": args.images is not None,
        "--exclude": bool(args.exclude),
        "--allow-removal": args.allow_removal,
        "--watch": args.watch,
        "--ray": args.ray,
        "--captions": args.captions,
        "--ocr": bool(args.ocr),
        "--rebuild-text": args.rebuild_text,
        "--rebuild-store": args.rebuild_store is not None,
    }
    clashing = [flag for flag, given in folder_only.items() if given]
    if clashing:
        raise InvalidInputError(f"{kind} indexes no folder: drop {', '.join(clashing)}")
    if args.parquet is not None:
        return _index_parquet(args)
    return _index_dataset(args, open_engine, checked_model, print_report)


def _index_parquet(args: argparse.Namespace) -> int:
    from zeroshot_vision._index import IndexFolder
    from zeroshot_vision.ingest._exchange import check_import_model, import_index
    from zeroshot_vision.stores._parquet import ParquetVectors

    encoding = {"--store": args.store not in (None, "faiss"), "--ann": args.ann is not None,
                "--backend": args.backend is not None, "--precision": args.precision is not None,
                "--device": args.device is not None, "--workers": args.workers is not None,
                "--compile": args.compile}  # fmt: skip
    given = [flag for flag, value in encoding.items() if value]
    if given:
        raise InvalidInputError(
            f"--parquet encodes nothing and makes a faiss index: drop {', '.join(given)}"
        )
    if IndexFolder.exists(args.index):  # refused before the file is read through
        check_import_model(
            IndexFolder.open(args.index).manifest.model,
            file_model=ParquetVectors.open(args.parquet).model,
            requested=args.model,
        )
    count = import_index(
        args.parquet,
        args.index,
        model=args.model,
        batch_size=args.batch_size or 1_000,
        wait=args.wait,
        progress=interactive(),
    )
    if args.json:
        print_json({"indexed": count, "encoded": 0, "source": args.parquet})
    else:
        say(f"{args.parquet}: {count} vectors added to {args.index} (given; nothing encoded)")
    return EXIT_OK


def _index_dataset(
    args: argparse.Namespace,
    open_engine: Callable[[argparse.Namespace, str | None], tuple[Any, Any]],
    checked_model: Callable[[argparse.Namespace], str | None],
    print_report: Callable[[Any, str | None], None],
) -> int:
    from zeroshot_vision.integrations.hf_datasets import (
        check_columns,
        index_dataset,
        open_dataset,
    )

    # A bad name or column fails before a model loads or a folder is made.
    dataset = open_dataset(args.dataset)
    check_columns(
        dataset,
        image_column=args.image_column,
        id_column=args.id_column,
        metadata_columns=args.metadata_column,
    )
    engine, encoder = open_engine(args, checked_model(args))
    try:
        report = index_dataset(
            engine,
            dataset,
            image_column=args.image_column,
            id_column=args.id_column,
            metadata_columns=args.metadata_column,
            batch_size=args.batch_size,
            progress=interactive(),
        )
    finally:
        engine.close()
        if encoder is not None:
            encoder.close()
    if args.json:
        print_json(report.to_json())
    else:
        print_report(report, None)
    return EXIT_OK
