"""``zsv info``: what an index folder holds."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zeroshot_vision._cli.exits import EXIT_OK
from zeroshot_vision._cli.options import add_index_option
from zeroshot_vision._cli.output import human_size, one_line, print_json, say

if TYPE_CHECKING:
    from zeroshot_vision._cli.options import Subcommands

__all__ = ["add_info_command", "run_info"]


def add_info_command(commands: Subcommands) -> None:
    """Register ``zsv info``."""
    parser = commands.add_parser(
        "info",
        help="describe an index folder",
        description="Count, model, dimension, store and size on disk of an index.",
    )
    add_index_option(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.set_defaults(handler=run_info)


def run_info(args: argparse.Namespace) -> int:
    """``zsv info``: what an index folder holds."""
    from zeroshot_vision._index import IndexFolder

    folder = IndexFolder.open(args.index)
    store = folder.open_store()
    try:
        count = len(store)
        footprint = _footprint(store, folder.store_path, count)
    finally:
        store.close()
    counts = folder.counts()
    manifest = folder.manifest
    info: dict[str, Any] = {
        "index": str(Path(args.index).resolve()),
        "count": count,
        "model": manifest.model,
        "dim": manifest.dim,
        "encoder": _encoder_route(manifest.encoder),
        "store": manifest.store.kind,
        "store_options": dict(manifest.store.options),
        "size_bytes": folder.size_bytes(),
        "source": folder.source(),
        "sources": [{"path": s.path, "id_prefix": s.prefix} for s in folder.sources()],
        "files": counts["indexed"],
        "bad_images": counts["failed"],
        "format_version": manifest.version,
        **_text_info(folder),
        **footprint,
        "reindex": _pending_reindex(folder),
    }
    if args.json:
        print_json(info)
        return EXIT_OK
    options = "".join(f" {k}={v}" for k, v in info["store_options"].items())
    rows = [
        ("index", info["index"]),
        ("count", str(count)),
        ("model", manifest.model),
        ("dim", str(manifest.dim)),
        ("encoder", _encoder_row(info["encoder"])),
        ("store", manifest.store.kind + options),
        ("size", human_size(info["size_bytes"])),
        *_footprint_rows(footprint),
        *_source_rows(info["sources"]),
        ("bad images", str(counts["failed"])),
        *_text_rows(info),
        *_reindex_rows(info["reindex"]),
    ]
    for key, value in rows:
        say(f"{key + ':':<12}{one_line(value, 400)}")
    return EXIT_OK


def _pending_reindex(folder: Any) -> dict[str, str] | None:
    """A reindex to another model that was started and has not switched yet, if any."""
    from zeroshot_vision.ingest._reindex import PendingReindex

    pending = PendingReindex.read(folder.path)
    if pending is None or pending.store_dir == folder.manifest.store_dir:
        return None
    return {"model": pending.model, "started": pending.started}


def _reindex_rows(pending: dict[str, str] | None) -> list[tuple[str, str]]:
    if pending is None:
        return []
    return [
        (
            "reindex",
            f"to {pending['model']}, started {pending['started']}, unfinished: run zsv "
            "reindex again with that model to go on (searches use the model above)",
        )
    ]


def _encoder_route(record: Any) -> dict[str, Any]:
    """The backend and precision the images were encoded with (from the manifest)."""
    if record is None:  # written before routes were recorded: always the torch backend
        return {"backend": "torch", "precision": None, "recorded": False}
    return {"backend": record.backend, "precision": record.precision, "recorded": True}


def _encoder_row(route: dict[str, Any]) -> str:
    """``encoder:`` row: ``onnx int8``, or ``torch (not recorded: an older index)``."""
    if not route["recorded"]:
        return f"{route['backend']} (route not recorded: an older index, written by torch)"
    return f"{route['backend']} {route['precision']}"


def _text_info(folder: Any) -> dict[str, Any]:
    """The lexical side: how many images have text, the top places, or its damage."""
    from zeroshot_vision._errors import TextIndexDamagedError
    from zeroshot_vision._index.text import has_text_index, open_text_index

    if not has_text_index(folder):
        return {"text": None}
    try:
        text = open_text_index(folder)
        assert text is not None
        with text:
            places = text.top_places(10)
            return {
                "text": {"images": len(text), "ocr": folder.meta("ocr") == "1"},
                "places": [{"city": c, "country_code": cc, "count": n} for c, cc, n in places],
            }
    except TextIndexDamagedError as exc:
        return {"text": {"error": str(exc)}}


def _text_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    """``text:`` and ``places:`` rows of ``zsv info``."""
    text = info.get("text")
    if text is None:
        return [("text", "none (vector search only; any zsv index run adds it)")]
    if "error" in text:
        return [("text", text["error"])]
    rows = [("text", f"{text['images']} images" + (", text in photos read" if text["ocr"] else ""))]
    places = ", ".join(
        f"{p['city']}" + (f" ({p['country_code']})" if p["country_code"] else "") + f" {p['count']}"
        for p in info.get("places", [])
    )
    rows.append(("places", places or "-"))
    return rows


def _footprint(store: Any, folder: Path, count: int) -> dict[str, Any]:
    """A FAISS store's kind, and its RAM and disk per million vectors as built."""
    from zeroshot_vision.stores._faiss import FaissStore

    if not isinstance(store, FaissStore) or not count:
        return {}
    per_million = 1_000_000 / count
    return {
        "index_type": store.index_type,
        "ram_bytes_per_million": int(store.ram_bytes() * per_million),
        "disk_bytes_per_million": int(FaissStore.disk_usage(folder) * per_million),
    }


def _footprint_rows(footprint: dict[str, Any]) -> list[tuple[str, str]]:
    if not footprint:
        return []
    ram = human_size(footprint["ram_bytes_per_million"])
    disk = human_size(footprint["disk_bytes_per_million"])
    return [
        ("kind", footprint["index_type"]),
        ("per 1M", f"{ram} RAM, {disk} disk (as built, scaled to a million vectors)"),
    ]


def _source_rows(sources: list[dict[str, str]]) -> list[tuple[str, str]]:
    """One ``source:`` row per source folder (with its id prefix after the first)."""
    if not sources:
        return [("source", "-")]
    return [
        ("source", s["path"] + (f"  (ids {s['id_prefix']}/...)" if s["id_prefix"] else ""))
        for s in sources
    ]
