"""The app offers date, camera and folder filters for a folder index of photos."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import save_with_exif

from zeroshot_vision import SearchEngine
from zeroshot_vision._app.logic import (
    ChoiceFacet,
    RangeFacet,
    build_filter,
    discover_facets,
    iter_metadata,
)


def test_folder_index_facets_are_dates_cameras_and_folders(
    tmp_path: Path, tiny_encoder: object, photo_paths: list[Path]
) -> None:
    photos = tmp_path / "photos"
    shots = [("2019/a.jpg", "2019:08:01 10:00:00", "X-T4"), ("2021/b.jpg", "2021:03:02 09:30:00",
             "EOS R5"), ("2021/c.jpg", "2021:11:02 09:30:00", "EOS R5")]  # fmt: skip
    for (name, taken, model), photo in zip(shots, photo_paths):
        save_with_exif(photo, photos / name, taken=taken, model=model)
    with SearchEngine.create(tmp_path / "index", encoder=tiny_encoder) as engine:  # type: ignore[arg-type]
        engine.index_folder(photos)
        facets = {facet.key: facet for facet in discover_facets(iter_metadata(engine.store))}
        assert set(facets) == {"year", "month", "camera_model", "folders"}
        assert isinstance(facets["year"], RangeFacet) and facets["year"].integer
        folders = facets["folders"]
        assert isinstance(folders, ChoiceFacet)
        assert folders.options == (str(photos), str(photos / "2019"), str(photos / "2021"))
        wanted = build_filter(list(facets.values()), choices={"folders": [str(photos / "2021")]},
                              ranges={"year": (2021.0, 2021.0)})  # fmt: skip
        hits = engine.search("a photo", k=5, filter=wanted)
    assert sorted(hit.id for hit in hits) == ["2021/b.jpg", "2021/c.jpg"]
