"""Fixtures of the integration tests: the photos with the metadata tests filter on."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.helpers import PLACES


@pytest.fixture(scope="session")
def photo_metadata(photo_paths: list[Path]) -> list[dict[str, object]]:
    """Per photo (same order): its country, year and photographer."""
    out: list[dict[str, object]] = []
    for path in photo_paths:
        country, year, photographer = PLACES[path.stem]
        out.append({"country": country, "year": year, "photographer": photographer})
    return out
