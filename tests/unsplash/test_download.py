"""The Unsplash downloader against a real HTTP server on loopback, with faults and kills."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from tests.helpers import PhotoServer, photo_row, write_dataset

from zeroshot_vision._errors import InvalidInputError
from zeroshot_vision.unsplash._download import (
    FAILURES_FILE,
    DownloadOutcome,
    RetryPolicy,
    _retry_after,
    download_dataset,
    download_photos,
    read_failures,
)
from zeroshot_vision.unsplash._lite import UnsplashPhoto

FAST = RetryPolicy(retries=2, backoff=0.001, max_backoff=0.01, max_retry_after=5.0)


@pytest.fixture
def photo_server() -> Iterator[PhotoServer]:
    with PhotoServer(slow_seconds=1.5) as running:
        yield running


def photos(photo_server: PhotoServer, ids: list[str]) -> list[UnsplashPhoto]:
    return [UnsplashPhoto(photo_id=i, image_url=f"{photo_server.url}/photo-{i}") for i in ids]


def decodes(path: Path) -> bool:
    with Image.open(io.BytesIO(path.read_bytes())) as image:
        image.load()
    return True


def test_downloads_every_photo_with_resize_parameters(
    photo_server: PhotoServer, tmp_path: Path
) -> None:
    outcomes: list[DownloadOutcome] = []
    report = download_photos(
        photos(photo_server, ["a1", "b2", "c3"]),
        tmp_path,
        workers=3,
        retry=FAST,
        progress=outcomes.append,
    )
    assert (report.downloaded, report.skipped, report.failed) == (3, 0, ())
    assert report.ok and str(report) == "downloaded 3, skipped 0, failed 0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a1.jpg", "b2.jpg", "c3.jpg"]
    assert all(decodes(p) for p in tmp_path.iterdir())
    assert photo_server.queries["a1"] == "w=640&fit=max&fm=jpg&q=80"
    assert sorted(o.photo_id for o in outcomes) == ["a1", "b2", "c3"]
    assert report.bytes_written == sum(p.stat().st_size for p in tmp_path.iterdir())


def test_rerun_skips_present_photos_without_a_request(
    photo_server: PhotoServer, tmp_path: Path
) -> None:
    download_photos(photos(photo_server, ["a1", "b2"]), tmp_path, retry=FAST)
    photo_server.requests.clear()
    report = download_photos(
        photos(photo_server, ["a1", "b2", "c3"]), tmp_path, retry=FAST, width=320
    )
    assert (report.downloaded, report.skipped) == (1, 2)
    assert dict(photo_server.requests) == {"c3": 1}
    assert photo_server.queries["c3"].startswith("w=320&")


def test_faults_are_retried_or_recorded(photo_server: PhotoServer, tmp_path: Path) -> None:
    photo_server.faults.update(
        {
            "gone": "404",
            "flaky": "500-then-200",
            "broken": "500",
            "busy": "429",
            "cut": "truncated",
            "short": "short-read",
            "page": "html",
            "slow": "slow",
        }
    )
    ids = ["ok1", "gone", "flaky", "broken", "busy", "cut", "short", "page", "slow", "ok2"]
    report = download_photos(
        photos(photo_server, ids), tmp_path, workers=4, timeout=0.3, retry=FAST
    )
    reasons = {f.photo_id: f.reason for f in report.failed}
    assert sorted(reasons) == ["broken", "cut", "gone", "page", "short", "slow"]
    assert reasons["gone"] == "HTTP 404"
    assert reasons["broken"] == "HTTP 500"
    assert reasons["cut"].startswith("not an image (image/jpeg")
    assert reasons["page"].startswith("not an image (text/html")
    assert reasons["short"].startswith("connection error")
    assert reasons["slow"].startswith("timed out")
    assert report.downloaded == 4
    on_disk = sorted(p.stem for p in tmp_path.glob("*.jpg"))
    assert on_disk == ["busy", "flaky", "ok1", "ok2"]
    assert all(decodes(p) for p in tmp_path.glob("*.jpg"))
    assert not list(tmp_path.glob(".*"))  # no temp files left behind
    # 404 and "not an image" are permanent; 5xx, resets and timeouts use every retry.
    assert photo_server.requests["gone"] == 1 and photo_server.requests["page"] == 1
    assert photo_server.requests["cut"] == 1
    assert photo_server.requests["flaky"] == 2 and photo_server.requests["broken"] == 3
    assert photo_server.requests["short"] == 3 and photo_server.requests["slow"] == 3
    # Retry-After: 1 was honoured rather than the tiny backoff.
    first, second = photo_server.times["busy"]
    assert second - first >= 0.9

    recorded = read_failures(tmp_path)
    assert {(f.photo_id, f.reason) for f in recorded} == set(reasons.items())
    assert all(f.url.startswith(f"{photo_server.url}/photo-{f.photo_id}?w=640") for f in recorded)
    header = (tmp_path / FAILURES_FILE).read_text(encoding="utf-8").splitlines()[0]
    assert header == "photo_id\turl\treason"


def test_rerun_fetches_only_the_failed_and_clears_the_failures_file(
    photo_server: PhotoServer, tmp_path: Path
) -> None:
    photo_server.faults.update({"gone": "404", "page": "html"})
    first = download_photos(photos(photo_server, ["ok", "gone", "page"]), tmp_path, retry=FAST)
    assert len(first.failed) == 2 and (tmp_path / FAILURES_FILE).exists()
    photo_server.faults.clear()
    photo_server.requests.clear()
    second = download_photos(photos(photo_server, ["ok", "gone", "page"]), tmp_path, retry=FAST)
    assert second.ok and (second.downloaded, second.skipped) == (2, 1)
    assert dict(photo_server.requests) == {"gone": 1, "page": 1}
    assert not (tmp_path / FAILURES_FILE).exists()


def test_failures_of_photos_not_tried_this_run_are_kept(
    photo_server: PhotoServer, tmp_path: Path
) -> None:
    photo_server.faults.update({"gone": "404", "later": "404"})
    download_photos(photos(photo_server, ["gone", "later"]), tmp_path, retry=FAST)
    photo_server.faults.pop("gone")
    download_photos(photos(photo_server, ["gone"]), tmp_path, retry=FAST)
    assert [f.photo_id for f in read_failures(tmp_path)] == ["later"]


def test_redirects_are_followed_and_bad_responses_are_failures_not_crashes(
    photo_server: PhotoServer, tmp_path: Path
) -> None:
    photo_server.faults.update({"moved": "redirect", "loop": "redirect-loop", "zip": "bad-gzip"})
    report = download_photos(
        photos(photo_server, ["moved", "loop", "zip", "ok"]), tmp_path, retry=FAST
    )
    reasons = {f.photo_id: f.reason for f in report.failed}
    assert sorted(reasons) == ["loop", "zip"]
    assert reasons["loop"].startswith("too many redirects")
    assert reasons["zip"].startswith("bad response")
    assert photo_server.requests["moved-moved"] == 1  # fetched from where the redirect pointed
    assert decodes(tmp_path / "moved.jpg") and decodes(tmp_path / "ok.jpg")
    assert sorted(f.photo_id for f in read_failures(tmp_path)) == ["loop", "zip"]


def test_a_trickling_body_times_out_as_a_whole(photo_server: PhotoServer, tmp_path: Path) -> None:
    # Each 16-byte piece arrives well within the read timeout; the whole body does not.
    photo_server.faults["drip"] = "trickle"
    started = time.monotonic()
    report = download_photos(
        photos(photo_server, ["drip", "ok"]), tmp_path, timeout=0.3, retry=RetryPolicy(retries=0)
    )
    assert [f.photo_id for f in report.failed] == ["drip"]
    assert report.failed[0].reason.startswith("timed out (body still arriving")
    assert time.monotonic() - started < 3.0
    assert not (tmp_path / "drip.jpg").exists() and decodes(tmp_path / "ok.jpg")


def test_unsafe_photo_ids_never_become_paths(photo_server: PhotoServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = download_photos(photos(photo_server, ["../evil", "ok"]), out, retry=FAST)
    assert [f.reason for f in report.failed] == ["invalid photo id"]
    assert not (tmp_path / "evil.jpg").exists() and photo_server.requests["../evil"] == 0


def test_malformed_urls_are_failures_not_crashes(photo_server: PhotoServer, tmp_path: Path) -> None:
    bad = [
        UnsplashPhoto(photo_id="noscheme", image_url="ftp://example.invalid/x"),
        UnsplashPhoto(photo_id="broken", image_url="http://[::1"),
        *photos(photo_server, ["fine"]),
    ]
    report = download_photos(bad, tmp_path, retry=FAST)
    assert report.downloaded == 1
    assert sorted(f.photo_id for f in report.failed) == ["broken", "noscheme"]
    assert all(f.reason.startswith("invalid URL") for f in report.failed)


def test_stale_temp_files_of_a_killed_run_are_removed(
    photo_server: PhotoServer, tmp_path: Path
) -> None:
    stale = tmp_path / ".a1.jpg.xyz123.tmp"
    stale.write_bytes(b"half")
    download_photos(photos(photo_server, ["a1"]), tmp_path, retry=FAST)
    assert not stale.exists() and decodes(tmp_path / "a1.jpg")


def test_download_dataset_reads_the_table(photo_server: PhotoServer, tmp_path: Path) -> None:
    rows = [photo_row(f"p{i}", photo_server.url) for i in range(5)]
    dataset = write_dataset(tmp_path / "lite", rows, variant="csv000")
    report = download_dataset(dataset, tmp_path / "images", limit=3, retry=FAST)
    assert report.downloaded == 3
    assert sorted(p.stem for p in (tmp_path / "images").glob("*.jpg")) == ["p0", "p1", "p2"]


def test_retry_policy_delays() -> None:
    policy = RetryPolicy(backoff=1.0, max_backoff=3.0, max_retry_after=10.0)
    assert 0.5 <= policy.delay(0) <= 1.0
    assert 1.5 <= policy.delay(5) <= 3.0
    assert policy.delay(0, retry_after=4.0) == 4.0
    assert policy.delay(0, retry_after=600.0) == 10.0
    assert _retry_after("7") == 7.0
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert _retry_after("soon") is None and _retry_after(None) is None


def test_download_killed_with_sigkill_resumes_without_losing_anything(tmp_path: Path) -> None:
    count = 40
    with PhotoServer(delay=0.05) as photo_server:
        rows = [photo_row(f"k{i:02d}", photo_server.url) for i in range(count)]
        dataset = write_dataset(tmp_path / "lite", rows)
        out = tmp_path / "images"
        command = [
            sys.executable, "-m", "zeroshot_vision._cli", "download", str(dataset),
            "--out", str(out), "--workers", "2",
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while len(list(out.glob("*.jpg"))) < 3 and time.monotonic() < deadline:
                assert process.poll() is None, process.communicate()
                time.sleep(0.01)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL
        landed = sorted(p.stem for p in out.glob("*.jpg"))
        assert 3 <= len(landed) < count
        assert all(decodes(out / f"{stem}.jpg") for stem in landed)

        photo_server.requests.clear()
        finished = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert finished.returncode == 0, finished.stderr
        assert len(list(out.glob("*.jpg"))) == count
        assert all(decodes(p) for p in out.glob("*.jpg"))
        assert not set(photo_server.requests) & set(landed)  # nothing fetched twice
        assert not list(out.glob(".*"))
        assert f"skipped {len(landed)}" in finished.stdout + finished.stderr


# Whatever goes wrong with one photo is that photo's recorded failure: the run goes on,
# and failures.tsv is written.


@pytest.mark.parametrize(
    "value", ["²", "١٢", "1²", "٣"], ids=["superscript", "arabic", "mixed", "one-arabic"]
)
def test_a_retry_after_of_unicode_digits_falls_back_to_backoff(
    photo_server: PhotoServer, tmp_path: Path, value: str
) -> None:
    assert value.isdigit() or value[0].isdigit()  # what the old check trusted
    assert _retry_after(value) is None
    photo_server.faults["busy"] = "retry-after"
    photo_server.retry_after = value
    report = download_photos(photos(photo_server, ["busy", "ok"]), tmp_path, retry=FAST)
    assert report.ok and report.downloaded == 2
    assert photo_server.requests["busy"] == 2


def _dds_with_unknown_pixel_format() -> bytes:
    """A DDS header on which Pillow raises NotImplementedError (not an OSError)."""
    import struct

    header = struct.pack("<3I", 0, 8, 8) + bytes(12 + 44) + struct.pack("<2I", 32, 0x80000)
    return b"DDS " + struct.pack("<I", 124) + header + bytes(120 - len(header))


def _png(width: int, height: int) -> bytes:
    """A valid grayscale PNG of any size, built row by row (no full image in memory)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    packer = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then black pixels
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", data)
        + chunk(b"IEND", b"")
    )


def test_a_body_pillow_fails_on_in_any_way_is_a_recorded_failure(
    photo_server: PhotoServer, tmp_path: Path
) -> None:
    from PIL import Image as PILImage

    dds = _dds_with_unknown_pixel_format()
    with pytest.raises(NotImplementedError):
        PILImage.open(io.BytesIO(dds))
    photo_server.faults["dds"] = "body"
    photo_server.bodies["dds"] = dds
    report = download_photos(photos(photo_server, ["dds", "ok"]), tmp_path, retry=FAST)
    assert [f.photo_id for f in report.failed] == ["dds"]
    assert report.failed[0].reason.startswith("not an image (image/jpeg")
    assert "NotImplementedError" in report.failed[0].reason
    assert [f.photo_id for f in read_failures(tmp_path)] == ["dds"]
    assert not (tmp_path / "dds.jpg").exists() and decodes(tmp_path / "ok.jpg")


def test_an_unexpected_error_on_one_photo_is_its_failure(
    photo_server: PhotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zeroshot_vision.unsplash._download as unsplash

    real = unsplash.write_atomic

    def write(path: Path, data: bytes) -> None:
        if path.name == "bad.jpg":
            raise RuntimeError("something nobody expected\non two lines")
        real(path, data)

    monkeypatch.setattr(unsplash, "write_atomic", write)
    report = download_photos(photos(photo_server, ["bad", "ok"]), tmp_path, retry=FAST)
    assert [(f.photo_id, f.reason) for f in report.failed] == [
        ("bad", "RuntimeError: something nobody expected")
    ]
    assert [f.photo_id for f in read_failures(tmp_path)] == ["bad"]


def test_a_photo_over_the_indexers_pixel_limit_is_refused_before_decoding(
    photo_server: PhotoServer, tmp_path: Path
) -> None:
    from zeroshot_vision._images import DEFAULT_MAX_PIXELS, load_image

    side = int(DEFAULT_MAX_PIXELS**0.5) + 1  # 9460 x 9460: just over the limit
    photo_server.faults["huge"] = "body"
    photo_server.bodies["huge"] = _png(side, side)
    assert len(photo_server.bodies["huge"]) < 2 * 2**20  # small file, many pixels
    report = download_photos(photos(photo_server, ["huge", "ok"]), tmp_path, retry=FAST)
    assert [f.photo_id for f in report.failed] == ["huge"]
    assert "over the limit" in report.failed[0].reason
    assert not (tmp_path / "huge.jpg").exists()
    assert load_image(tmp_path / "ok.jpg").size == (48, 32)


def test_response_headers_trickling_in_time_out_as_a_whole(
    photo_server: PhotoServer, tmp_path: Path
) -> None:
    # Each byte arrives well within the read timeout; the headers do not, in all.
    photo_server.faults["drip"] = "header-trickle"
    started = time.monotonic()
    report = download_photos(
        photos(photo_server, ["drip", "ok"]), tmp_path, timeout=0.5, retry=RetryPolicy(retries=0)
    )
    elapsed = time.monotonic() - started
    assert [f.photo_id for f in report.failed] == ["drip"]
    assert report.failed[0].reason.startswith("timed out")
    assert elapsed < 2.5, elapsed
    assert not (tmp_path / "drip.jpg").exists() and decodes(tmp_path / "ok.jpg")


def test_reading_tables_needs_no_http_client() -> None:
    """httpx is the download extra's: the readers (and indexing) work without it."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['httpx'] = None\n"
        "from zeroshot_vision.unsplash import read_photos, is_unsplash_dir\n"
        "from zeroshot_vision.unsplash._lite import image_url\n"
        "print(image_url('https://images.unsplash.com/photo-1?ixid=abc&w=9', width=640))\n"
        "try:\n"
        "    from zeroshot_vision.unsplash import _download as download_photos\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert out[0] == "https://images.unsplash.com/photo-1?ixid=abc&w=640&fit=max&fm=jpg&q=80"
    assert out[1].startswith("MissingDependencyError")
    assert 'pip install "zeroshot-vision[download]"' in out[1]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"photo_id\turl\treason\n\xff\xfe\n", "not UTF-8"),
        (b"photo\tlink\n", "header"),
        (b"photo_id\turl\treason\na\tb\n", "line 2 has 2 fields"),
        (b"photo_id\turl\treason\n\tb\tc\n", "line 2, field 'photo_id'"),
        (b"photo_id\turl\treason\na\0\tb\tc\n", "line"),
        (b"photo_id\turl\treason\na\tb\t" + b"x" * 70_000 + b"\n", "field 'reason'"),
        (b'photo_id\turl\treason\n"a\tb\tc\n', "line"),
    ],
)
def test_a_damaged_failures_file_is_a_one_line_error_and_the_next_run_replaces_it(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    (tmp_path / "failures.tsv").write_bytes(content)
    with pytest.raises(InvalidInputError, match=r"failures\.tsv is damaged") as exc:
        read_failures(tmp_path)
    assert problem in str(exc.value) and "\n" not in str(exc.value)
    from zeroshot_vision.unsplash._download import DownloadFailure, _write_failures

    _write_failures(tmp_path, [DownloadFailure(photo_id="p", url="u", reason="r")], {"p"})
    assert read_failures(tmp_path) == [DownloadFailure(photo_id="p", url="u", reason="r")]


def test_a_directory_named_failures_tsv_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "failures.tsv").mkdir()
    with pytest.raises(InvalidInputError, match="not a regular file"):
        read_failures(tmp_path)
