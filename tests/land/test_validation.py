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
from tests.helpers import NamedRows

VALID = {"event_id": "e1", "user_id": 42, "event_ts": "2026-01-02T03:04:05.123456Z", "event_type": "purchase",
         "value": 19.99, "app_version": "1.2.3", "properties": {"b": 1, "a": "x"}}


@pytest.fixture(scope="module")
def validator() -> Validator:
    return NamedRows(load_contract())


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
    expected_key = hashlib.sha256(b"42\x1f2026-01-02T03:04:05.123456Z\x1fpurchase\x1fe1").hexdigest()
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


# ------------------------------------------------------------------------------------------------- hardening


def raw_field(name: str, text: bytes, **changes) -> bytes:
    """VALID with field `name` written as the raw JSON text `text` (what json.dumps would not write)."""
    marker = "\ue000marker\ue000"
    return with_(**{name: marker}, **changes).replace(json.dumps(marker).encode(), text)


def nested(depth: int) -> dict:
    node: dict = {}
    for _ in range(depth - 1):
        node = {"n": node}
    return node  # depth `depth`: {} is 1


@pytest.mark.parametrize("line, reason", [
    # lone surrogate escapes are not strict JSON, wherever they are (they crashed the land)
    (raw_field("event_id", b'"\\ud800"'), "malformed_json"),
    (raw_field("app_version", b'"x\\uDBFF"'), "malformed_json"),
    (raw_field("properties", b'{"k":"\\udc00"}'), "malformed_json"),
    (raw_field("properties", b'{"\\ud800":1}'), "malformed_json"),
    (raw_field("properties", b'{"a":[[{"b":"\\ude00\\ud83d"}]]}'), "malformed_json"),  # low then high: no pair
    (raw_field("colour", b'"\\ud800"'), "malformed_json"),  # before unknown_field
    # exponents out of Decimal's range (decimal.InvalidOperation crashed the land)
    (raw_field("value", b"1e999999999999"), "invalid_value"),
    (raw_field("value", b"1e9999999999999999999"), "invalid_value"),
    (raw_field("value", b"-1e9999999999999999999"), "invalid_value"),
    (raw_field("value", b"1e-9999999999999999999"), "invalid_value"),
    (raw_field("user_id", b"1e9999999999999999999"), "wrong_type"),
    (raw_field("event_id", b"1e9999999999999999999"), "wrong_type"),
    # decimals counted exactly, never rounded away
    (raw_field("value", b"123e-10000000"), "invalid_value"),
    (raw_field("value", b"1e-3"), "invalid_value"),
    (raw_field("value", b"0.001"), "invalid_value"),
    (raw_field("value", b"10.000000000000000000000000000001"), "invalid_value"),
    # whitespace: only JSON's own around the value
    (b"\x0c" + with_(), "malformed_json"),
    (b"\xc2\xa0" + with_(), "malformed_json"),
    (with_() + b"\x0b", "malformed_json"),
    (with_() + b" ,", "malformed_json"),
    # nesting: not strict JSON at any depth → malformed_json; strict and deeper than 64 → invalid_value
    (b"[" * 100_000, "malformed_json"),
    (b"[" * 100_000 + b"]" * 99_999, "malformed_json"),
    (b'{"a":' * 50_000 + b"1", "malformed_json"),
    (raw_field("properties", b'{"a":' + b"[" * 5000 + b"NaN" + b"]" * 5000 + b"}"), "malformed_json"),
    (raw_field("properties", b'{"a":1,"a":' + b"[" * 5000 + b"]" * 5000 + b"}"), "malformed_json"),
    (raw_field("properties", b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"} x"), "malformed_json"),
    (with_(properties=nested(64)), "invalid_value"),  # 65 with the record
    (b"[" * 65 + b"]" * 65, "invalid_value"),  # before wrong_type
    (raw_field("colour", b"[" * 70 + b"]" * 70), "invalid_value"),  # before unknown_field
    (raw_field("user_id", b"[" * 70 + b"]" * 70), "invalid_value"),  # before wrong_type
    (raw_field("user_id", b"[" * 500 + b"]" * 500, event_type=...), "invalid_value"),  # before missing_field
    (raw_field("properties", b'{"a":' * 3000 + b"1" + b"}" * 3000), "invalid_value"),
    # U+0000 is a field's invalid_value: after unknown_field, missing_field and earlier fields' wrong_type
    (with_(colour="\u0000"), "unknown_field"),
    (with_(user_id=..., properties={"\u0000": 1}), "missing_field"),
    (with_(user_id="1", properties={"k": "\u0000"}), "wrong_type"),
    (with_(properties={"k": ["a", {"b": "\u0000"}]}), "invalid_value"),
    # a timestamp whose offset takes it out of datetime's range
    (with_(event_ts="0001-01-01T00:00:00+01:00"), "invalid_value"),
    (with_(event_ts="9999-12-31T23:59:59-01:00"), "invalid_value"),
])
def test_hostile_lines_get_their_reason_code(validator, line, reason):
    assert reason_of(validator, line) == reason


@pytest.mark.parametrize("line", [
    b"  \t" + with_() + b" \r\t ",  # whitespace around the value is allowed
    with_().replace(b", ", b" ,\r\n\t").replace(b": ", b" :  "),
    with_(properties=nested(63)),  # 64 levels with the record
    raw_field("properties", b'{"x":1e9999999999999999999,"y":-1E+999999999999,"z":123e-10000000}'),
    raw_field("properties", b'{"e":"\\ud83d\\ude00","s":"\\\\ud800"}'),  # a real pair; an escaped backslash
    raw_field("value", b"0e-10000000"), raw_field("value", b"0e9999999999999999999"),
    raw_field("value", b"1.5000000000000000000000000000000000"), raw_field("value", b"125e-2"),
    raw_field("value", b"1E+3"),
])
def test_hostile_but_valid_lines_land(validator, line):
    assert reason_of(validator, line) is None


def test_huge_numbers_in_objects_are_kept_as_written_and_tiny_values_exactly(validator):
    row = validator.from_json_line(raw_field("properties", b'{"y":2.50, "x":1e9999999999999999999}'))
    assert row.properties == '{"x":1e9999999999999999999,"y":2.50}'
    assert validator.from_json_line(raw_field("value", b"125e-2")).value == Decimal("1.25")


def test_minus_zero_is_zero(validator):
    rows = [validator.from_json_line(raw_field("value", text)) for text in (b"0", b"-0", b"-0.00", b"0e-10000000")]
    assert {(str(r.value), r.payload_sha256) for r in rows} == {("0.00", rows[0].payload_sha256)}


def test_the_depth_limit_is_64_whatever_parser_measured_it():
    from evident.land.validation import parse_json_line, strict_json_depth

    for depth in (1, 64, 65, 900, 5000):
        text = "[" * depth + "]" * depth
        assert strict_json_depth(text) == depth
        if depth <= 64:
            assert parse_json_line(text.encode(), 1 << 20) is not None
        else:
            with pytest.raises(Rejection, match=f"nested {depth} levels") as exc:
                parse_json_line(text.encode(), 1 << 20)
            assert exc.value.reason == "invalid_value"


# ---------------------------------------------------------------------------- rule types and CSV records


@pytest.fixture(scope="module")
def typed_validator(tmp_path_factory) -> Validator:
    """A contract with the rule types app_events does not use: boolean, date, pattern, scale."""
    path = tmp_path_factory.mktemp("contract") / "typed.v1.yml"
    path.write_text(
        "name: typed\nversion: 1\nformat: jsonl\nidempotency_key: [order_id]\npartition_by: day\nfields:\n"
        "  order_id: {type: string, required: true, pattern: '[A-Z]{2}-[0-9]+'}\n"
        "  currency: {type: string, pattern: '[A-Z]{3}'}\n"
        "  is_gift:  {type: boolean}\n"
        "  day:      {type: date, minimum: 2000-01-01, maximum_exclusive: '2100-01-01'}\n"
        "  amount:   {type: decimal, minimum: 0}\n"
        "  rate:     {type: decimal, scale: 4}\n"
        "  legacy:   {type: decimal, max_decimal_places: 1}\n", encoding="utf-8")
    return Validator(load_contract("typed", 1, path=path), build=dict)


@pytest.mark.parametrize("record, reason", [
    ({"order_id": "AB-1"}, None),
    ({"order_id": "AB-1x"}, "invalid_value"),  # the whole value must match
    ({"order_id": "xAB-1"}, "invalid_value"),
    ({"order_id": "AB-1\n"}, "invalid_value"),  # $ would match before a final newline; a whole match does not
    ({"order_id": "AB-1", "currency": "EUR"}, None),
    ({"order_id": "AB-1", "currency": "eur"}, "invalid_value"),
    ({"order_id": "AB-1", "currency": 978}, "wrong_type"),
    ({"order_id": "AB-1", "is_gift": True}, None),
    ({"order_id": "AB-1", "is_gift": False}, None),
    ({"order_id": "AB-1", "is_gift": None}, None),
    ({"order_id": "AB-1", "is_gift": 1}, "wrong_type"),
    ({"order_id": "AB-1", "is_gift": "true"}, "wrong_type"),
    ({"order_id": "AB-1", "day": "2026-02-28"}, None),
    ({"order_id": "AB-1", "day": "2024-02-29"}, None),
    ({"order_id": "AB-1", "day": "2026-02-29"}, "invalid_value"),  # no such day
    ({"order_id": "AB-1", "day": "2026-13-01"}, "invalid_value"),
    ({"order_id": "AB-1", "day": "20260101"}, "invalid_value"),
    ({"order_id": "AB-1", "day": "2026-01-01T00:00:00Z"}, "invalid_value"),
    ({"order_id": "AB-1", "day": "1999-12-31"}, "invalid_value"),
    ({"order_id": "AB-1", "day": "2100-01-01"}, "invalid_value"),
    ({"order_id": "AB-1", "day": 20260101}, "wrong_type"),
    ({"order_id": "AB-1", "amount": 1.25}, None),
    ({"order_id": "AB-1", "amount": 1.255}, "invalid_value"),  # scale defaults to 2
    ({"order_id": "AB-1", "rate": 1.2345}, None),
    ({"order_id": "AB-1", "rate": 1.23456}, "invalid_value"),
    ({"order_id": "AB-1", "legacy": 1.5}, None),
    ({"order_id": "AB-1", "legacy": 1.55}, "invalid_value"),  # max_decimal_places still works
])
def test_boolean_date_pattern_and_scale_rules(typed_validator, record, reason):
    assert reason_of(typed_validator, json.dumps(record).encode()) == reason


def test_typed_values_of_the_other_rule_types(typed_validator):
    from datetime import date

    assert typed_validator.from_json_line(b'{"order_id":"AB-1","is_gift":true,"day":"2026-02-28","rate":1.5}') == {
        "order_id": "AB-1", "currency": None, "is_gift": True, "day": date(2026, 2, 28), "amount": None,
        "rate": Decimal("1.5"), "legacy": None}


def test_a_contract_with_a_bad_pattern_or_conflicting_scales_is_refused(tmp_path):
    from evident.errors import ContractError

    for rule in ("{type: string, pattern: '[A-Z'}", "{type: decimal, scale: 2, max_decimal_places: 3}",
                 "{type: decimal, scale: -1}"):
        path = tmp_path / "bad.v1.yml"
        path.write_text(f"name: bad\nversion: 1\nformat: jsonl\nidempotency_key: [k]\npartition_by: at\nfields:\n"
                        f"  k: {{type: string, required: true}}\n  at: {{type: date}}\n"
                        f"  f: {rule}\n", encoding="utf-8")
        with pytest.raises(ContractError):
            load_contract("bad", 1, path=path)


def csv_outcomes(validator: Validator, data: bytes) -> list[tuple[int, str | None, bytes]]:
    from evident.land.records import csv_rows

    out = []
    for number, record in csv_rows(data):
        try:
            validator.from_csv_record(record)
            out.append((number, None, record.raw))
        except Rejection as rej:
            out.append((number, rej.reason, record.raw))
    return out


def test_csv_records_keep_their_raw_text_and_get_malformed_csv(validator):
    data = (b"\xef\xbb\xbfevent_id,user_id,event_ts,event_type,value,app_version,properties\r\n"
            b"e1,1,2026-01-01T00:00:00Z,login,,,\r\n"
            b"  \r\n"
            b"e2,1,2026-01-01T00:00:00Z,login\r\n"
            b'"e3\nspans two lines",2,2026-01-01T00:00:00Z,purchase,1.5,,"{""a"":[1]}"\r\n'
            b"e4,\xff,2026-01-01T00:00:00Z,login,,,\n"
            b'e5,1,"2026"-01-01T00:00:00Z,login,,,\n'
            b"e6,1,2026-01-01T00:00:00Z,login,1e9999999999999999999,,\n"
            b"e7,+7,2026-01-01T00:00:00Z,login,,,\n"
            b"e8,1,2026-01-01T00:00:00Z,login,,," + b'"' + b"[" * 70 + b"]" * 70 + b'"\n'
            b"e9,1,2026-01-01T00:00:00Z,login,,,a,b\n"
            b"e10,1,2026-01-01T00:00:00Z,login,,,\"[1]\"\n"
            b'"e11 never closes,1,2026-01-01T00:00:00Z,login,,,\n'
            b"e12,1,2026-01-01T00:00:00Z,login,,,\n")
    assert csv_outcomes(validator, data) == [
        (2, None, b"e1,1,2026-01-01T00:00:00Z,login,,,"),
        (4, "malformed_csv", b"e2,1,2026-01-01T00:00:00Z,login"),
        (5, None, b'"e3\nspans two lines",2,2026-01-01T00:00:00Z,purchase,1.5,,"{""a"":[1]}"'),
        (7, "invalid_utf8", b"e4,\xff,2026-01-01T00:00:00Z,login,,,"),
        (8, "malformed_csv", b'e5,1,"2026"-01-01T00:00:00Z,login,,,'),
        (9, "invalid_value", b"e6,1,2026-01-01T00:00:00Z,login,1e9999999999999999999,,"),
        (10, None, b"e7,+7,2026-01-01T00:00:00Z,login,,,"),
        (11, "invalid_value", b"e8,1,2026-01-01T00:00:00Z,login,,," + b'"' + b"[" * 70 + b"]" * 70 + b'"'),
        (12, "malformed_csv", b"e9,1,2026-01-01T00:00:00Z,login,,,a,b"),
        (13, "wrong_type", b'e10,1,2026-01-01T00:00:00Z,login,,,"[1]"'),
        # an unclosed quote takes the rest of the file into one record: CSV's own rule, and it is malformed
        (14, "malformed_csv",
         b'"e11 never closes,1,2026-01-01T00:00:00Z,login,,,\ne12,1,2026-01-01T00:00:00Z,login,,,'),
    ]


def test_a_csv_header_that_names_a_column_twice_makes_every_row_malformed(validator):
    data = b"event_id,user_id,event_id\ne1,1,e2\n"
    assert csv_outcomes(validator, data) == [(2, "malformed_csv", b"e1,1,e2")]


def test_a_csv_cell_over_the_csv_modules_field_limit_is_fine(validator):
    big = "x" * 200_000
    data = (b"event_id,user_id,event_ts,event_type,properties\n"
            b'e1,1,2026-01-01T00:00:00Z,login,"{""blob"":""' + big.encode() + b'""}"\n')
    assert [reason for _, reason, _ in csv_outcomes(validator, data)] == [None]


# --------------------------------------------------------------------------------------------- the barrier


def test_an_unexpected_error_quarantines_only_that_record(monkeypatch):

    from evident.land import chunks, validation

    real = validation._check_string

    def explode(rule, value):
        if value == "boom":
            raise KeyError("a bug in a check")
        return real(rule, value)

    monkeypatch.setitem(validation._CHECKS, "string", explode)
    monkeypatch.setattr(chunks, "_VALIDATORS", {})  # validators made from now on use the broken check
    # the space leaves the line to the exact path (the fast path inlines its string checks)
    boom = b" " + with_(event_id="boom")
    lines = [with_(event_id=f"e{i}") for i in range(5)] + [boom] + [with_(event_id="e9")]
    batch = chunks.validate_chunk(load_contract(), chunks.Chunk(data=b"\n".join(lines)))
    assert batch.rows.column("event_id").to_pylist() == ["e0", "e1", "e2", "e3", "e4", "e9"]
    [q] = batch.rejected
    assert (q.line_number, q.reason_code, q.raw_text) == (6, "invalid_value", boom.decode())
    assert "KeyError" in q.message and "a bug in a check" in q.message
