"""Null readings and their ``quality`` reasons: accepted by decoding, refused with the reason by the runtime."""

from __future__ import annotations

import re

import pytest

from vigil.streaming.messages import Reading, Rejection, parse_record


def test_a_null_reading_with_its_reason_is_decoded_as_such():
    record = {"device": "p1", "time": 0, "readings": {"t": None, "f": 1.0}, "quality": {"t": "BadSensorFailure"}}
    reading = parse_record(record)
    assert isinstance(reading, Reading)
    assert reading.values == {"t": None, "f": 1.0}
    assert reading.quality == {"t": "BadSensorFailure"}


@pytest.mark.parametrize(
    ("quality", "message"),
    [
        ({"f": "BadSensorFailure"}, "'quality' names 'f', whose reading is not null"),
        ({"x": "BadSensorFailure"}, "'quality' names 'x', whose reading is not null"),
        ({"t": ""}, "'quality'\\['t'\\] must be a non-empty string"),
        (["t"], "'quality' must be an object"),
    ],
)
def test_quality_explains_null_readings_only(quality, message):
    record = {"device": "p1", "time": 0, "readings": {"t": None, "f": 1.0}, "quality": quality}
    rejection = parse_record(record)
    assert isinstance(rejection, Rejection)
    assert rejection.kind == "invalid_record"
    assert rejection.device == "p1"

    assert re.search(message, rejection.reason)
