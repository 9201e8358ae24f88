"""The contract, record by record: each rule gives its reason code, valid records are typed and keyed."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal

import pytest

from evident.land.contracts import load_contract
from evident.land.records import jsonl_lines
from evident.land.validation import Rejection, Validator

VALID = {"event_id": "e1", "user_id": 42, "event_ts": "2026-01-02T03:04:05.123456Z", "event_type": "purchase",
         "value": 19.99, "app_version": "1.2.3", "properties": {"b": 1, "a": "x"}}


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator(load_contract())


def reason_of(validator: Validator, line: bytes) -> str | None:
    try:
        validator.from_json_line(line)
        return None
    except Rejection as rej:
        return rej.reason


def with_(**changes) -> bytes:
    record = dict(VALID)
    for name, value in changes.items():
        if value is ...:
            record.pop(name)
        else:
            record[name] = value
    return json.dumps(record).encode()


def test_valid_record_is_typed_and_keyed_as_the_design_says(validator):
    row = validator.from_json_line(with_())
    expected_key = hashlib.sha256("42\x1f2026-01-02T03:04:05.123456Z\x1fpurchase\x1fe1".encode()).hexdigest()
    assert (row.key, row.user_id, row.event_ts, row.value, row.properties) == (
        expected_key, 42, datetime(2026, 1, 2, 3, 4, 5, 123456), Decimal("19.99"), '{"a":"x","b":1}')


@pytest.mark.parametrize("ts, utc", [
    ("2026-01-02 03:04:05", datetime(2026, 1, 2, 3, 4, 5)),
    ("2026-01-02T03:04:05+02:00", datetime(2026, 1, 2, 1, 4, 5)),
    ("2026-01-01T23:30:00-05:30", datetime(2026, 1, 2, 5, 0, 0)),
    ("2026-01-02T03:04:05.5Z", datetime(2026, 1, 2, 3, 4, 5, 500000)),
    ("2000-01-01T00:00:00Z", datetime(2000, 1, 1)),
    ("2000-01-01T01:00:00+01:00", datetime(2000, 1, 1)),
])
def test_timestamps_honour_offsets_and_are_stored_as_utc(validator, ts, utc):
    assert validator.from_json_line(with_(event_ts=ts)).event_ts == utc


def test_same_instant_in_two_offsets_gives_the_same_key(validator):
    a = validator.from_json_line(with_(event_ts="2026-01-02T03:04:05Z"))
    b = validator.from_json_line(with_(event_ts="2026-01-02T05:04:05.000+02:00"))
    assert a.key == b.key and a.payload_sha256 == b.payload_sha256


@pytest.mark.parametrize("line, reason", [
    (b"x" * (1024 * 1024 + 1), "oversized_record"),
    (b'{"event_id":"\xff\xfe"}', "invalid_utf8"),
    (b'{"event_id":"e1",', "malformed_json"),
    (b'{"value": NaN}', "malformed_json"),
    (b'{"value": Infinity}', "malformed_json"),
    (b'{"event_id":"a","event_id":"b"}', "malformed_json"),
    (b'{"event_id":"a\x01b"}', "malformed_json"),
    (b'{"a":1} {"b":2}', "malformed_json"),
    (b'[1,2]', "wrong_type"),
    (b'"just a string"', "wrong_type"),
    (with_(colour="red"), "unknown_field"),
    (with_(**{"'; drop table raw.app_events; --": 1}), "unknown_field"),
    (with_(event_type=...), "missing_field"),
    (with_(user_id=None), "missing_field"),
    (with_(user_id="42"), "wrong_type"),
    (with_(user_id=4.0), "wrong_type"),
    (with_(user_id=True), "wrong_type"),
    (with_(value="9.99"), "wrong_type"),
    (with_(value=True), "wrong_type"),
    (with_(event_id=7), "wrong_type"),
    (with_(properties=[1]), "wrong_type"),
    (with_(event_ts=1767225600), "wrong_type"),
    (with_(event_type="Purchase"), "invalid_value"),
    (with_(user_id=0), "invalid_value"),
    (with_(user_id=2 ** 63), "invalid_value"),
    (with_(user_id=10 ** 60), "invalid_value"),
    (with_(value=-1), "invalid_value"),
    (with_(value=1.234), "invalid_value"),
    (with_(value=1e16), "invalid_value"),
    (with_(event_ts="2026-02-30T00:00:00Z"), "invalid_value"),
    (with_(event_ts="2026-01-02T24:00:00Z"), "invalid_value"),
    (with_(event_ts="1999-12-31T23:59:59Z"), "invalid_value"),
    (with_(event_ts="2100-01-01T00:00:00Z"), "invalid_value"),
    (with_(event_ts="2000-01-01T00:30:00+01:00"), "invalid_value"),
    (with_(event_ts="2026-01-02T03:04:05.1234567Z"), "invalid_value"),
    (with_(event_ts="2026-01-02T03:04:05z"), "invalid_value"),
    (with_(event_ts="2026-01-02T03:04:05+05:60"), "invalid_value"),
    (with_(event_ts="2026-01-02"), "invalid_value"),
    (with_(event_id=""), "invalid_value"),
    (with_(event_id="x" * 129), "invalid_value"),
    (with_(event_id="a\u0000b"), "invalid_value"),
    (with_(properties={"k": "a\u0000"}), "invalid_value"),
    (with_(app_version="v" * 65), "invalid_value"),
    (b"[" * 100_000 + b"]" * 100_000, "invalid_value"),
])
def test_each_rule_has_its_reason_code(validator, line, reason):
    assert reason_of(validator, line) == reason


@pytest.mark.parametrize("line", [
    with_(value=None), with_(value=...), with_(app_version=None), with_(properties=None),
    with_(value=0), with_(value=100), with_(value=1.5),
    with_(user_id=2 ** 63 - 1), with_(event_id="x" * 128), with_(app_version="v" * 64),
    with_(event_id="\u00e9\u4e2d\U0001f600"), with_(event_ts="2099-12-31T23:59:59.999999Z"),
])
def test_edges_inside_the_rules_are_valid(validator, line):
    assert reason_of(validator, line) is None


def test_value_keeps_exact_cents(validator):
    assert validator.from_json_line(b'{"event_id":"e","user_id":1,"event_ts":"2026-01-01T00:00:00Z",'
                                    b'"event_type":"purchase","value":9999999999999999.99}').value == \
        Decimal("9999999999999999.99")


def test_whole_line_rules_bom_crlf_blank_lines():
    data = b"\xef\xbb\xbf{\"a\":1}\r\n\r\n   \n{\"b\":2}\n"
    assert list(jsonl_lines(data)) == [(1, b'{"a":1}'), (4, b'{"b":2}')]
