"""Videos: decoding per minute of video, frames per minute, and indexing rate, one pass vs two.

    python benchmarks/bench_video.py [--seconds 60] [--sizes 320x240 640x360 1280x720]
                                     [--fps 30] [--scene 5] [--preset tiny] [--rounds 2]
                                     [--clips DIR]

Clips are generated with PyAV from scikit-image's photos (one scene per photo, a slow
pan and zoom with noise on every frame, hard cuts; H.264 in MP4); ``--clips DIR`` keeps
them there and reuses them on the next run (writing a 720p clip takes minutes). For
each clip, interleaved over ``--rounds`` (median):

* **two passes** (``VideoOptions(one_pass=False)``, the path before one-pass decoding):
  :func:`~zeroshot_vision._images.video.select_frames` decodes every frame to choose,
  then :func:`~zeroshot_vision._images.video.read_frames` decodes up to the last chosen
  frame again for their pictures: ms per minute of video, both passes;
* **one pass** (the default): :func:`~zeroshot_vision._images.video.scan_frames`
  decodes once, without unreferenced frames above 20 fps, and keeps the chosen
  pictures (JPEG, as the ingest does): ms per minute of video;
* frames chosen per minute (default interval 5 s);
* **index**: ``index_folder`` of the clip, end to end with the random SigLIP
  ``--preset`` (built offline), in indexed frames per second, each way, against
  ``index_folder`` of the same number of JPEG photos (the chosen frames saved as files)
  in the same run: the ratio is the cost of the video decoding.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from zeroshot_vision import Encoder, SearchEngine
from zeroshot_vision._images.video import VideoOptions, read_frames, scan_frames, select_frames
from zeroshot_vision.ingest._video import HELD_BYTES, HeldFrames, _Budget
from zeroshot_vision.testing import build_random_siglip
from zeroshot_vision.testing._video_clips import write_clip

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report


def _photos() -> list[object]:
    import skimage.data

    return [
        skimage.data.astronaut(),
        skimage.data.coffee(),
        skimage.data.chelsea(),
        skimage.data.rocket(),
        skimage.data.immunohistochemistry(),
    ]


def _measure(
    root: Path, clip: Path, stills: Path, encoder: Encoder, rounds: int, batch_size: int
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Seconds of each way, interleaved over ``rounds``, and the frames each indexed."""
    one = VideoOptions()
    two = VideoOptions(one_pass=False)
    counts: dict[str, int] = {}
    runs = 0

    def two_passes() -> None:
        chosen = select_frames(clip, two)
        list(read_frames(clip, [f.position for f in chosen.frames], two))

    def one_pass() -> None:
        held = HeldFrames(_Budget(HELD_BYTES))
        counts["one pass"] = len(scan_frames(clip, one, held).frames)

    def index(name: str, folder: Path, video: VideoOptions | bool) -> float:
        nonlocal runs
        runs += 1
        with SearchEngine.create(root / f"index-{name}-{runs}", encoder=encoder) as engine:
            report = engine.index_folder(folder, video=video, batch_size=batch_size)
        assert not report.failed, report.failed
        counts[name] = len(report.indexed)
        return report.seconds

    seconds = _report.interleaved(
        {
            "decode, two passes": two_passes,
            "decode, one pass": one_pass,
            "index photos": lambda: index("photos", stills, False),
            "index, two passes": lambda: index("two passes", clip.parent, two),
            "index, one pass": lambda: index("one pass", clip.parent, one),
        },
        rounds,
    )
    return seconds, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each clip")
    parser.add_argument("--sizes", nargs="+", default=["320x240", "640x360", "1280x720"])
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--scene", type=float, default=5.0, help="seconds per scene")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (median)")
    parser.add_argument("--clips", type=Path, help="keep the clips here, reuse them")
    args = parser.parse_args()

    one = VideoOptions()
    two = VideoOptions(one_pass=False)
    photos = _photos()
    scenes = max(1, round(args.seconds / args.scene))
    rows = []
    raw: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_random_siglip(root / "model", preset=args.preset)
        encoder = Encoder.from_pretrained(model)
        for size in args.sizes:
            width, height = (int(v) for v in size.split("x"))
            clips = (args.clips or root) / f"clips-{size}-{args.fps}-{scenes}x{args.scene:g}"
            clip = clips / "clip.mp4"
            if not clip.exists():
                clips.mkdir(parents=True, exist_ok=True)
                write_clip(
                    clips / "clip.part.mp4",
                    [photos[i % len(photos)] for i in range(scenes)],
                    seconds=args.scene,
                    fps=args.fps,
                    size=(width, height),
                )
                (clips / "clip.part.mp4").rename(clip)
            minutes = scenes * args.scene / 60
            selection = select_frames(clip, two)
            positions = [f.position for f in selection.frames]
            # The same frames as photos: what indexing them would cost without a video.
            stills = root / f"stills-{size}"
            stills.mkdir()
            for position, image in read_frames(clip, positions, two):
                image.save(stills / f"frame{position:06d}.jpg", quality=90)
            encoder.encode_images(sorted(stills.iterdir())[: args.batch_size])  # warm-up
            seconds, counts = _measure(
                root / size, clip, stills, encoder, args.rounds, args.batch_size
            )
            raw.update({f"{size} {name}": values for name, values in seconds.items()})
            median = {name: _report.median(values) for name, values in seconds.items()}
            rates = {
                name: counts[name.removeprefix("index, ").removeprefix("index ")] / median[name]
                for name in ("index photos", "index, two passes", "index, one pass")
            }
            rows.append(
                [
                    f"{size} {args.fps} fps",
                    scenes * args.scene,
                    median["decode, two passes"] * 1000 / minutes,
                    median["decode, one pass"] * 1000 / minutes,
                    _report.ratio(median["decode, two passes"], median["decode, one pass"]),
                    len(positions) / minutes,
                    counts["one pass"] / minutes,
                    rates["index photos"],
                    _report.ratio(rates["index, two passes"], rates["index photos"]),
                    _report.ratio(rates["index, one pass"], rates["index photos"]),
                ]
            )

    table = _report.table(
        f"Videos (H.264, {args.scene:g} s scenes, interval {one.max_interval:g} s), "
        f"random SigLIP {args.preset}, batch size {args.batch_size}, median of "
        f"{args.rounds} interleaved rounds; indexing against the same frames as JPEG photos",
        ["clip", "seconds", "decode ms/min, two passes", "decode ms/min, one pass",
         "decode speed-up", "frames/min, two passes", "frames/min, one pass", "photos/s",
         "index vs photos, two passes", "index vs photos, one pass"],
        rows,
        raw=raw,
    )  # fmt: skip
    _report.write("video", [table], arguments={k: str(v) for k, v in vars(args).items()})


if __name__ == "__main__":
    main()
