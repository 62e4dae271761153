"""``zsv download``: the photos of an Unsplash Lite dataset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from zeroshot_vision._cli.exits import EXIT_OK, EXIT_PARTIAL
from zeroshot_vision._cli.options import (
    non_negative_int_arg,
    positive_int_arg,
    positive_seconds_arg,
)
from zeroshot_vision._cli.output import human_size, print_json, progress_bar, say

if TYPE_CHECKING:
    from zeroshot_vision._cli.options import Subcommands
    from zeroshot_vision.unsplash._download import DownloadOutcome

__all__ = ["add_download_command", "run_download"]


def add_download_command(commands: Subcommands) -> None:
    """Register ``zsv download``."""
    parser = commands.add_parser(
        "download",
        help="download the photos of an Unsplash Lite dataset",
        description=(
            "Download the photos listed in an unzipped Unsplash Lite folder to OUT/<id>.jpg. "
            "Photos already there are skipped; failures are listed in OUT/failures.tsv."
        ),
    )
    parser.add_argument("dataset_dir", metavar="DATASET_DIR", help="the unzipped Unsplash folder")
    parser.add_argument("--out", required=True, metavar="IMAGES_DIR", help="where photos go")
    parser.add_argument(
        "--width",
        type=positive_int_arg,
        default=640,
        metavar="PX",
        help="width in pixels (default 640)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int_arg,
        default=8,
        metavar="N",
        help="parallel requests (default 8)",
    )
    parser.add_argument(
        "--limit", type=positive_int_arg, metavar="N", help="only the first N photos"
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds_arg,
        default=30.0,
        metavar="S",
        help="seconds per attempt, connecting, headers and body together (default 30)",
    )
    parser.add_argument(
        "--retries",
        type=non_negative_int_arg,
        default=3,
        metavar="N",
        help="retries on 5xx/429/errors (default 3)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    parser.set_defaults(handler=run_download)


def run_download(args: argparse.Namespace) -> int:
    """``zsv download``: fetch the photos, print a one-line summary."""
    from zeroshot_vision.unsplash._download import FAILURES_FILE, RetryPolicy, download_photos
    from zeroshot_vision.unsplash._lite import read_photos

    photos = list(read_photos(args.dataset_dir, limit=args.limit))
    bar = progress_bar(len(photos), unit="photo", desc="download")
    failed = 0

    def on_outcome(outcome: DownloadOutcome) -> None:
        nonlocal failed
        if bar is not None:
            if outcome.status == "failed":
                failed += 1
                bar.set_postfix(failed=failed, refresh=False)
            bar.update(1)

    try:
        report = download_photos(
            photos,
            args.out,
            width=args.width,
            workers=args.workers,
            timeout=args.timeout,
            retry=RetryPolicy(retries=args.retries),
            progress=on_outcome,
        )
    finally:
        if bar is not None:
            bar.close()
    rate = report.downloaded / report.seconds if report.seconds > 0 else 0.0
    if args.json:
        print_json(
            {
                "downloaded": report.downloaded,
                "skipped": report.skipped,
                "failed": [
                    {"photo_id": f.photo_id, "url": f.url, "reason": f.reason}
                    for f in report.failed
                ],
                "bytes": report.bytes_written,
                "seconds": round(report.seconds, 3),
                "photos_per_second": round(rate, 2),
            }
        )
    else:
        line = f"{report} ({rate:.1f} photos/s, {human_size(report.bytes_written)})"
        if report.failed:
            line += f"; failures listed in {Path(args.out) / FAILURES_FILE}"
        say(line)
    return EXIT_OK if report.ok else EXIT_PARTIAL
