"""The quickstart demo: index a folder of real photos, then answer a query.

Run it with ``make demo`` (which creates the environment first), or directly::

    python examples/demo.py                      # the default SigLIP, from the hub
    ZSV_MODEL=path/to/siglip python examples/demo.py   # a checkpoint folder
    ZSV_MODEL=tiny python examples/demo.py       # offline: a tiny random model

The photos are the samples that ship inside scikit-image (an astronaut, a cat, a cup of
coffee, a rocket, ...). Everything goes through the ``zsv`` command line, exactly as a
user would type it; ``demo-data/`` holds the copies and one index per model afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SAMPLES = [
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "motorcycle_left.png",
    "retina.jpg",
    "horse.png",
]
QUERIES = ["a cat", "a cup of coffee", "a rocket launching into the sky"]


def copy_samples(folder: Path) -> None:
    import skimage

    data = Path(skimage.__file__).parent / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for name in SAMPLES:
        if (data / name).exists():
            shutil.copy2(data / name, folder / name)


def zsv(*args: str) -> None:
    print("$ zsv " + " ".join(f'"{a}"' if " " in a else a for a in args), flush=True)
    subprocess.run([sys.executable, "-m", "zeroshot_vision._cli", *args], check=True)


def index_name(model: str) -> str:
    """The demo index's folder name for a model: one index per model.

    An index holds one model's vectors, and zsv refuses a model other than the index's;
    a folder per model lets ``ZSV_MODEL=tiny make demo`` and ``make demo`` both run.
    """
    last = Path(model.rstrip("/\\")).name or "model"
    return "index-" + "".join(c if c.isalnum() or c in "-._" else "_" for c in last)


def main() -> int:
    from zeroshot_vision import default_model

    root = Path("demo-data")
    photos, index = root / "photos", root / index_name(default_model())
    copy_samples(photos)
    # zsv follows $ZSV_MODEL ("tiny": a tiny random model built offline into the user
    # cache; a folder; a hub id), else the default SigLIP; the index records the choice.
    if os.environ.get("ZSV_MODEL", "").strip() == "tiny":
        print("ZSV_MODEL=tiny: a tiny random SigLIP (results are meaningless, the plumbing real)")
    elif not os.environ.get("ZSV_MODEL"):
        print("Using google/siglip-so400m-patch14-384; the first run downloads ~3.5 GB.")
    try:
        zsv("index", str(photos), "--index", str(index))
        for query in QUERIES:
            zsv("search", query, "--index", str(index), "-k", "3")
        zsv("classify", str(photos / "chelsea.png"), "--labels", "a cat,a dog,a car")
    except subprocess.CalledProcessError as exc:
        return exc.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
