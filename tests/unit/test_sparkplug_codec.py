"""Sparkplug B topics and payloads: the wire format, the value encodings, and refusals of what is not Sparkplug."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("google.protobuf", reason="the Sparkplug B codec needs protobuf: pip install 'vigil[plant]'")

from vigil.errors import InvalidInputError
from vigil.streaming.sources.sparkplug_codec import (
    MetricUpdate,
    decode,
    encode,
    metric_number,
    parse_topic,
    rebirth_command,
)

SIGNED = {"Int8": 8, "Int16": 16, "Int32": 32, "Int64": 64}
UNSIGNED = {"UInt8": 8, "UInt16": 16, "UInt32": 32, "UInt64": 64}
TYPE_IDS = {"Int8": 1, "Int16": 2, "Int32": 3, "Int64": 4, "UInt8": 5, "UInt16": 6, "UInt32": 7, "UInt64": 8}


def test_a_payload_written_by_hand_from_the_protobuf_wire_format_decodes() -> None:
    # Payload{timestamp=1, metrics=[{name "a", alias 1, datatype Double (10), double_value 2.5}], seq=3}, field by
    # field: 08 01 | 12 10 (metric, 16 bytes: 0a 01 61 | 10 01 | 20 0a | 69 + 2.5 as little-endian double) | 18 03
    raw = bytes.fromhex("0801" + "1210" + "0a0161" + "1001" + "200a" + "69" + "0000000000000440" + "1803")
    payload = decode(raw)
    assert (payload.timestamp_ms, payload.seq) == (1, 3)
    (metric,) = payload.metrics
    assert (metric.name, metric.alias, metric.datatype, metric.field, metric.value) == ("a", 1, 10, "double_value", 2.5)
    assert metric_number(metric, metric.datatype) == 2.5


@given(st.sampled_from(sorted(SIGNED)), st.data())
def test_signed_integers_round_trip_through_twos_complement(type_name: str, data: st.DataObject) -> None:
    bits = SIGNED[type_name]
    value = data.draw(st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
    (metric,) = decode(encode(0, 0, [("m", None, type_name, value)])).metrics
    assert metric_number(metric, metric.datatype) == float(value)


@given(st.sampled_from(["Int8", "Int16"]), st.integers(-(2**7), -1))
def test_a_negative_small_integer_reads_the_same_in_its_own_width_or_in_32_bits(type_name: str, value: int) -> None:
    # Eclipse Tahu writes Int8 -1 as 255, other writers as 2**32 - 1: both mean -1.
    metric = MetricUpdate("m", None, TYPE_IDS[type_name], "int_value", value + 2**32)
    assert metric_number(metric, TYPE_IDS[type_name]) == float(value)


@given(st.sampled_from(sorted(UNSIGNED)), st.data())
def test_unsigned_integers_round_trip(type_name: str, data: st.DataObject) -> None:
    value = data.draw(st.integers(0, 2 ** UNSIGNED[type_name] - 1))
    (metric,) = decode(encode(0, 0, [("m", None, type_name, value)])).metrics
    assert metric_number(metric, metric.datatype) == float(value)


def test_booleans_floats_nulls_and_strings() -> None:
    payload = decode(
        encode(
            5,
            1,
            [("on", 1, "Boolean", True), ("f", 2, "Float", 0.5), ("n", 3, "Double", None), ("s", 4, "String", "ok")],
        )
    )
    on, f, n, s = payload.metrics
    assert metric_number(on, on.datatype) == 1.0 and metric_number(f, f.datatype) == 0.5
    assert metric_number(n, n.datatype) == "metric 'n' is null"
    assert metric_number(s, s.datatype) == "metric 's' is a String, not a number"


def test_a_value_in_the_wrong_field_or_without_a_data_type_is_refused_with_the_reason() -> None:
    wrong = MetricUpdate("t", 7, 10, "int_value", 3)
    assert metric_number(wrong, 10) == "metric 't' is a Double but carries int_value instead of double_value"
    untyped = MetricUpdate(None, 7, None, "double_value", 1.0)
    assert "alias 7 has no data type" in str(metric_number(untyped, None))


def test_the_rebirth_command_is_the_node_control_metric_set_to_true() -> None:
    (metric,) = decode(rebirth_command(123)).metrics
    assert (metric.name, metric.datatype, metric.value) == ("Node Control/Rebirth", 11, True)


@given(st.binary(max_size=64))
def test_any_bytes_decode_or_are_refused_with_invalid_input(raw: bytes) -> None:
    try:
        decode(raw)
    except InvalidInputError as exc:
        assert "not a Sparkplug B payload" in str(exc)


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        ("spBv1.0/g/DDATA/node", "names a device"),
        ("spBv1.0/g/NDATA/node/dev", "ends at the edge node"),
        ("spBv1.0/g/XDATA/node", "is not a Sparkplug B topic"),
        ("spAv1.0/g/NDATA/node", "is not a Sparkplug B topic"),
        ("spBv1.0/g/NDATA", "is not a Sparkplug B topic"),
    ],
)
def test_topics_that_are_not_sparkplug_b_are_refused_with_the_reason(topic: str, problem: str) -> None:
    with pytest.raises(InvalidInputError, match=problem):
        parse_topic(topic)
