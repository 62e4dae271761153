"""photos: the file of a stored photo is served only from the store's own metadata."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from zeroshot_vision._photos import image_path_for_id
from zeroshot_vision.stores._faiss import FaissStore


def test_images_are_read_only_for_ids_in_the_store(tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(secret)
    store = FaissStore(2)
    store.upsert(["ok", "nopath"], [[1.0, 0.0], [0.0, 1.0]], [{"path": str(secret)}, {}])
    assert image_path_for_id(store, "ok") == secret
    # Neither an id that is a path, nor an id without a stored path, reads anything.
    assert image_path_for_id(store, str(secret)) is None
    assert image_path_for_id(store, "../../etc/passwd") is None
    assert image_path_for_id(store, "nopath") is None
    assert image_path_for_id(store, "") is None
