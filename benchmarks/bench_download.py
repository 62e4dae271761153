"""Download rate of the Unsplash downloader against a local HTTP server.

    python benchmarks/bench_download.py [--photos 500] [--workers 1 8 32] [--latency 0.05]

A stdlib ``ThreadingHTTPServer`` on 127.0.0.1 serves one 640-px JPEG (about the size
imgix returns for ``w=640&q=80``) for every photo id, after ``--latency`` seconds to stand
in for a CDN's round trip. Each run downloads every photo into an empty folder through
:func:`zeroshot_vision.unsplash._lite.download_photos`: request, full decode check,
fsync'd atomic write. The rate against the real CDN depends on your network; this
measures what the client side costs and how well concurrency hides latency.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image

from zeroshot_vision.unsplash._download import download_photos
from zeroshot_vision.unsplash._lite import UnsplashPhoto

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report


def sample_jpeg() -> bytes:
    """A real photo from scikit-image, 640 px wide, JPEG quality 80."""
    import skimage

    image = Image.open(Path(skimage.__file__).parent / "data" / "astronaut.png").convert("RGB")
    buffer = io.BytesIO()
    image.resize((640, 640)).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def serve(body: bytes, latency: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            if latency:
                time.sleep(latency)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--latency", type=float, default=0.05, help="server delay, seconds")
    args = parser.parse_args()

    body = sample_jpeg()
    server = serve(body, args.latency)
    host, port = server.server_address[:2]
    photos = [
        UnsplashPhoto(photo_id=f"p{i:06d}", image_url=f"http://{host}:{port}/photo-p{i:06d}")
        for i in range(args.photos)
    ]
    rows = []
    try:
        for workers in args.workers:
            with tempfile.TemporaryDirectory() as tmp:
                report = download_photos(photos, tmp, workers=workers, timeout=30)
                assert report.ok and report.downloaded == args.photos
                rate = report.downloaded / report.seconds
                rows.append((workers, report.seconds, rate, report.bytes_written / report.seconds))
    finally:
        server.shutdown()
        server.server_close()

    base = rows[0][2]
    table = _report.table(
        f"{args.photos} photos of {len(body) / 1024:.0f} KiB, server latency "
        f"{args.latency * 1000:.0f} ms (baseline: {args.workers[0]} worker(s), same run)",
        ["workers", "seconds", "photos/s", "MiB/s", "speed-up vs baseline"],
        [[w, sec, rate, tput / 2**20, rate / base] for w, sec, rate, tput in rows],
    )
    _report.write("download", [table], arguments=vars(args))


if __name__ == "__main__":
    main()
