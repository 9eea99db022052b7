"""Every documented limit of a telemetry payload: accepted at the limit, refused with its reason one past it."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest

from vigil.streaming.messages import (
    MAX_DEVICE_CHARS,
    MAX_NESTING_DEPTH,
    MAX_NUMBER_CHARS,
    MAX_TIME,
    MIN_TIME,
    Reading,
    Rejection,
    decode_payload,
    nesting_depth,
    parse_record,
)
from vigil.validation import check_record


def decode(raw: bytes) -> list | Rejection:
    return decode_payload(raw, max_bytes=10_000_000, max_records=100_000)


def nested(depth: int) -> bytes:
    """A record whose 'seq' holds arrays nested so that the whole payload is ``depth`` levels deep."""
    inner = "[" * (depth - 1) + "]" * (depth - 1)
    return f'{{"device": "p1", "time": 0, "readings": {{"a": 1}}, "seq": {inner}}}'.encode()


def test_nesting_at_the_limit_decodes_and_one_past_is_refused() -> None:
    assert nesting_depth(nested(MAX_NESTING_DEPTH)) == MAX_NESTING_DEPTH
    assert isinstance(decode(nested(MAX_NESTING_DEPTH)), list)
    refused = decode(nested(MAX_NESTING_DEPTH + 1))
    assert refused.kind == "invalid_json"
    assert f"{MAX_NESTING_DEPTH + 1} levels deep" in refused.reason


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    body = json.dumps({"device": "p1", "time": 0, "readings": {"[" * 100: 1}}).encode()
    assert nesting_depth(body) == 2
    assert isinstance(decode(body), list)


@pytest.mark.parametrize("literal", ["9" * MAX_NUMBER_CHARS, "0." + "1" * (MAX_NUMBER_CHARS - 2)])
def test_numbers_at_the_digit_limit_are_numbers(literal: str) -> None:
    (record,) = decode(f'{{"readings": {{"a": {literal}}}}}'.encode())
    assert check_record(record["readings"], ["a"])[0] == pytest.approx(float(literal))


@pytest.mark.parametrize("literal", ["9" * (MAX_NUMBER_CHARS + 1), "0." + "1" * (MAX_NUMBER_CHARS - 1), "7" * 5000])
def test_numbers_past_the_digit_limit_refuse_only_their_record(literal: str) -> None:
    body = f'[{{"readings": {{"a": {literal}}}}}, {{"readings": {{"a": 1.5}}}}]'.encode()
    bad, good = decode(body)
    with pytest.raises(ValueError, match=f"a number of {len(literal)} characters"):
        check_record(bad["readings"], ["a"])
    assert check_record(good["readings"], ["a"])[0] == 1.5


def parsed_time(value: object) -> Reading | Rejection:
    return parse_record({"device": "p1", "time": value, "readings": {"a": 1}})


@pytest.mark.parametrize(
    "value",
    [0, MIN_TIME.isoformat(), MAX_TIME.timestamp() - 0.5, (MAX_TIME - timedelta(microseconds=1)).isoformat()],
)
def test_times_at_the_ends_of_the_range_are_accepted(value: object) -> None:
    assert isinstance(parsed_time(value), Reading)


@pytest.mark.parametrize(
    "value",
    [
        -0.001,
        (MIN_TIME - timedelta(microseconds=1)).isoformat(),
        MAX_TIME.timestamp(),
        MAX_TIME.isoformat(),
        10**400,
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+01:00",
        "2024-01-01T00:00:00+00:00" + " " * 64,
    ],
)
def test_times_past_the_range_are_refused_with_the_reason(value: object) -> None:
    refused = parsed_time(value)
    assert isinstance(refused, Rejection) and refused.kind == "invalid_record"
    assert "'time'" in refused.reason


@pytest.mark.parametrize(
    "device", ["p", "A" * MAX_DEVICE_CHARS, "pump-7", "00:1b:44:11:3a:b7", "plant1.line_2.pump~3@site"]
)
def test_device_ids_of_the_alphabet_are_accepted(device: str) -> None:
    assert isinstance(parse_record({"device": device, "time": 0, "readings": {"a": 1}}), Reading)


@pytest.mark.parametrize(
    "device", ["A" * (MAX_DEVICE_CHARS + 1), "a/b", "a+b", "a#b", "a b", "..", ".hidden", "p\x00", "pümpe", "a?b"]
)
def test_device_ids_outside_the_alphabet_are_refused(device: str) -> None:
    refused = parse_record({"device": device, "time": 0, "readings": {"a": 1}})
    assert isinstance(refused, Rejection) and refused.kind == "invalid_record"
    assert "'device'" in refused.reason


def test_payload_size_at_the_limit_decodes_and_one_byte_past_is_refused() -> None:
    body = json.dumps({"device": "p1", "time": 0, "readings": {"a": 1}}).encode()
    assert isinstance(decode_payload(body, max_bytes=len(body), max_records=1), list)
    assert decode_payload(body, max_bytes=len(body) - 1, max_records=1).kind == "oversized"
    two = json.dumps([{"device": "p1"}, {"device": "p2"}]).encode()
    assert isinstance(decode_payload(two, max_bytes=1000, max_records=2), list)
    assert decode_payload(two, max_bytes=1000, max_records=1).kind == "oversized"


@pytest.mark.parametrize(
    ("content_type", "code"),
    [(None, 200), ("application/json", 200), ("application/json; charset=utf-8", 200),
     ("application/vnd.vigil+json", 200), ("application/x-www-form-urlencoded", 200), ("text/plain", 415),
     ("multipart/form-data; boundary=x", 415)],
)  # fmt: skip
def test_ingest_reads_json_or_unlabelled_bodies_and_refuses_other_content_types(
    runtime, content_type: str | None, code: int
) -> None:
    from fastapi.testclient import TestClient
    from service_helpers import WRITE_TOKEN, normal_readings, payload, record

    from vigil.service.app import create_app
    from vigil.service.auth import TokenAuth

    headers = {"Authorization": f"Bearer {WRITE_TOKEN}"} | ({"Content-Type": content_type} if content_type else {})
    body = payload(record("p1", 1.0, normal_readings(np.random.default_rng(0))))
    with TestClient(create_app(runtime, auth=TokenAuth({WRITE_TOKEN: "write"}))) as client:
        response = client.post("/ingest", content=body, headers=headers)
        assert response.status_code == code, response.text
        if code == 415:
            letters = client.get("/dead-letters", headers=headers).json()["dead_letters"]
            assert letters[0]["kind"] == "invalid_json" and "Content-Type" in letters[0]["reason"]


def test_http_ingest_at_the_payload_limit_is_read_and_one_byte_past_is_413(store, registry) -> None:
    from fastapi.testclient import TestClient
    from service_helpers import WRITE_TOKEN, normal_readings, payload, record

    from vigil.service.app import create_app
    from vigil.service.auth import TokenAuth
    from vigil.streaming.runtime import Runtime, RuntimeConfig

    body = payload(record("p1", 1.0, normal_readings(np.random.default_rng(0))))
    headers = {"Authorization": f"Bearer {WRITE_TOKEN}"}
    for limit, code in [(len(body), 200), (len(body) - 1, 413)]:
        config = RuntimeConfig(max_payload_bytes=limit)
        with Runtime(store, registry, config=config) as runtime:
            app = create_app(runtime, auth=TokenAuth({WRITE_TOKEN: "write"}))
            with TestClient(app) as client:
                assert client.post("/ingest", content=body, headers=headers).status_code == code
