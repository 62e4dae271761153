"""Videos: decode + frame choice per minute of video, frames per minute, and indexing rate.

    python benchmarks/bench_video.py [--seconds 60] [--sizes 320x240 640x360 1280x720]
                                     [--fps 30] [--scene 5] [--preset tiny]

Clips are generated with PyAV from scikit-image's photos (one scene per photo, a slow
pan and zoom with noise on every frame, hard cuts; H.264 in MP4). For each clip:

* **select**: :func:`~zeroshot_vision._images.video.select_frames` (one full decode at
  the analysis rate, thumbnails compared): ms per minute of video;
* **read**: :func:`~zeroshot_vision._images.video.read_frames` of the chosen frames
  (the second pass, at encode time): ms per minute of video;
* frames chosen per minute (default interval 5 s);
* **index**: ``index_folder(video=True)`` of the clip, end to end with the random SigLIP
  ``--preset`` (built offline), in indexed frames per second, against
  ``index_folder`` of the same number of JPEG photos (the chosen frames saved as files)
  in the same run: the ratio is the cost of the video decoding.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from zeroshot_vision import Encoder, SearchEngine
from zeroshot_vision._images.video import VideoOptions, read_frames, select_frames
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each clip")
    parser.add_argument("--sizes", nargs="+", default=["320x240", "640x360", "1280x720"])
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--scene", type=float, default=5.0, help="seconds per scene")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    options = VideoOptions()
    photos = _photos()
    scenes = max(1, round(args.seconds / args.scene))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_random_siglip(root / "model", preset=args.preset)
        encoder = Encoder.from_pretrained(model)
        for size in args.sizes:
            width, height = (int(v) for v in size.split("x"))
            clips = root / f"clips-{size}"
            clips.mkdir()
            clip = clips / "clip.mp4"
            started = time.perf_counter()
            write_clip(
                clip,
                [photos[i % len(photos)] for i in range(scenes)],
                seconds=args.scene,
                fps=args.fps,
                size=(width, height),
            )
            written = time.perf_counter() - started
            minutes = scenes * args.scene / 60
            started = time.perf_counter()
            selection = select_frames(clip, options)
            select_s = time.perf_counter() - started
            started = time.perf_counter()
            frames = list(read_frames(clip, [f.position for f in selection.frames], options))
            read_s = time.perf_counter() - started
            # The same frames as photos: what indexing them would cost without a video.
            stills = root / f"stills-{size}"
            stills.mkdir()
            for position, image in frames:
                image.save(stills / f"frame{position:06d}.jpg", quality=90)
            encoder.encode_images(sorted(stills.iterdir())[: args.batch_size])  # warm-up
            with SearchEngine.create(root / f"index-video-{size}", encoder=encoder) as engine:
                video_run = engine.index_folder(clips, video=options, batch_size=args.batch_size)
            with SearchEngine.create(root / f"index-stills-{size}", encoder=encoder) as engine:
                still_run = engine.index_folder(stills, video=False, batch_size=args.batch_size)
            count = len(selection.frames)
            assert len(video_run.indexed) == count == len(still_run.indexed)
            video_rate = count / video_run.seconds
            still_rate = count / still_run.seconds
            rows.append(
                [
                    f"{size} {args.fps} fps",
                    scenes * args.scene,
                    written,
                    select_s * 1000 / minutes,
                    read_s * 1000 / minutes,
                    count / minutes,
                    video_rate,
                    still_rate,
                    _report.ratio(video_rate, still_rate),
                ]
            )

    table = _report.table(
        f"Videos (H.264, {args.scene:g} s scenes, interval {options.max_interval:g} s), "
        f"random SigLIP {args.preset}, batch size {args.batch_size}; the same frames as JPEG "
        "photos in the same run",
        ["clip", "seconds", "write s", "select ms/min", "read ms/min", "frames/min",
         "video frames/s", "photos/s", "video vs photos"],
        rows,
    )  # fmt: skip
    _report.write("video", [table], arguments=vars(args))


if __name__ == "__main__":
    main()
