"""The fast path (evident.land.fast_path) decides only what the exact path decides the same way: for any line,
fast-then-exact (Validator.from_json_line) equals the exact path alone (Validator.exact_from_json_line) — the same
Row, or the same Rejection reason and message. Checked for app_events and for a made-up contract with every field
type, on generated records (valid, invalid, duplicate keys, escapes, whitespace) and on the hostile strategies;
and the fast path must actually decide the common case (the sample's lines)."""
from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evident.land.contracts import load_contract
from evident.land.validation import Rejection, Validator
from evident.sample import generate_sample
from tests.helpers import NamedRows
from tests.hostile import (
    BROKEN_VALUES,
    HOSTILE_VALUES,
    STRICT_HOSTILE_VALUES,
    deep_fragments,
    event_lines,
    json_values,
)

EXAMPLES = int(os.environ.get("EVIDENT_FAST_PATH_EXAMPLES", "2000"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

GADGETS = """\
# A made-up source with every field type and rule.
name: gadgets
version: 1
format: jsonl
idempotency_key: [code, at, count]
partition_by: day
max_record_bytes: 4096
fields:
  code:   {type: string, required: true, pattern: "G-[0-9]{3}"}
  kind:   {type: string, enum: [a, "b:c", "é"]}
  note:   {type: string, min_length: 1, max_length: 6}
  at:     {type: timestamp, required: true, minimum: "2000-01-01T00:00:00Z", maximum_exclusive: "2100-01-01T00:00:00Z"}
  day:    {type: date, required: true, minimum: "2000-01-01", maximum: "2099-12-31"}
  count:  {type: integer, required: true, minimum: -5, maximum: 1000}
  amount: {type: decimal, scale: 3, minimum: -100, maximum: 100}
  ok:     {type: boolean, required: true}
  meta:   {type: object}
"""


@pytest.fixture(scope="module")
def gadgets(tmp_path_factory) -> Validator:
    path = tmp_path_factory.mktemp("contracts") / "gadgets.v1.yml"
    path.write_text(GADGETS, encoding="utf-8")
    return Validator(load_contract("gadgets", 1, path=path))


APP_EVENTS = Validator(load_contract())
NAMED = NamedRows(load_contract())  # a custom build: the fast path must hand it the same typed values


def outcome(decide, line: bytes):
    try:
        return decide(line)
    except Rejection as rej:
        return ("rejected", rej.reason, rej.message)


def assert_same(validator: Validator, line: bytes) -> None:
    exact = outcome(validator.exact_from_json_line, line)
    assert outcome(validator.from_json_line, line) == exact, line[:300]
    fast = validator.fast_values(line) if validator.fast_values else None
    if fast is not None:  # it decided: the exact path made a row of the same values
        assert not (isinstance(exact, tuple) and exact[:1] == ("rejected",)), (line[:300], exact)


# ------------------------------------------------------------------------ JSON text of each field's values

def _escaped(text: str) -> str:
    """A JSON string spelling every character as a \\u escape (a ':' becomes \\u003a)."""
    return '"' + "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else json.dumps(c)[1:-1] for c in text) + '"'


TEXT = st.text(st.sampled_from("aG-0é:\x00\"\\ \t\U0001f600b"), max_size=8)


def strings(valid: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(valid).map(json.dumps),
        st.sampled_from(valid).map(lambda s: json.dumps(s, ensure_ascii=False)),
        st.sampled_from(valid).map(_escaped),
        TEXT.map(lambda s: json.dumps(s, ensure_ascii=False)),
        TEXT.map(_escaped),
        st.sampled_from(HOSTILE_VALUES),
    )


TIMESTAMPS = ["2026-01-01T00:00:00Z", "2026-01-01 02:00:00+02:00", "2026-01-01T00:00:00.000000+00:00",
              "2099-12-31T23:59:59.999999Z", "2100-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "2026-02-30T00:00:00Z",
              "2026-01-01T00:00:00+05:60", "2026-01-01T00:00:00.1234567Z", "2026-01-01", "2026-01-01T24:00:00Z",
              "2026-01-01T10:11:12-23:59", "0001-01-01T00:00:00+01:00"]
DATES = ["2026-01-01", "2000-01-01", "1999-12-31", "2099-12-31", "2100-01-01", "2026-02-29", "2024-02-29",
         "2026-1-01", "2026-01-01T00:00:00Z", ""]
NUMBERS = ["0", "-0", "1", "-1", "7", "1000", "1001", "-5", "-6", "1.0", "1E2", "1e2", "0.125", "-0.125", "1.5",
           "99.999", "100", "100.000", "100.0001", "-100", "-100.001", "0.1234", "1.2300", "1e-3", "0e-5",
           "9223372036854775807", "9223372036854775808", "-9223372036854775809", "1" * 45, "0." + "0" * 50 + "1",
           "true", "false", '"1.5"', '"7"', "[]", "{}", "1e400", "1E-400"]


def timestamps() -> st.SearchStrategy[str]:
    generated = st.builds(lambda d, sep: d.isoformat(sep=sep), st.datetimes(), st.sampled_from("T "))
    return st.one_of(strings(TIMESTAMPS), generated.map(lambda s: json.dumps(s + "Z")), generated.map(json.dumps))


def numbers() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(NUMBERS),
        st.integers().map(str),
        st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
        st.decimals(-1000, 1000, allow_nan=False, allow_infinity=False).map(lambda d: format(d, "f")),
        st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
        st.sampled_from(STRICT_HOSTILE_VALUES + BROKEN_VALUES),
    )


def objects() -> st.SearchStrategy[str]:
    keys = st.text(st.sampled_from("ab:é\x00\\\""), max_size=3)
    values = json_values(keys)
    return st.one_of(
        st.dictionaries(keys, values, max_size=4).map(lambda d: json.dumps(d, ensure_ascii=False)),
        st.dictionaries(keys, values, max_size=4).map(json.dumps),
        st.sampled_from(['{"a":1,"a":2}', '{"a":{"b":1,"b":1}}', '{"a":[{"x":1},{"x":1,"x":2}]}',
                         '{"a:b":"c:d","e":"f"}', '{"a":"\\u003a","b":1}', '{"k":1.5}', '{"k":-0}', '{"k":1e2}',
                         '{"k":' + "1" * 30 + "}", '{"k":-9223372036854775809}', '{"k":18446744073709551616}',
                         '{"k":"\\u0000"}', '{"\\u0000":1}', '{"k":"\\ud800"}', '{"k":"\xff"}', '{"k":NaN}',
                         '{"n":' * 62 + "1" + "}" * 62, '{"n":' * 63 + "1" + "}" * 63, "[]", '"x"', "{}",
                         '{ "b" : [ 1 , 2 ] , "a" : { } }', '{"z":1,"a":2,"é":3,"\\u00e9x":4}']),
        st.sampled_from(HOSTILE_VALUES),
    )


BOOLEANS = st.sampled_from(["true", "false", "null", "1", "0", '"true"', "[]", "tru"])
CLEAN = st.text(st.sampled_from("aG-0é:\"\\ \t\U0001f600b\u2028"), max_size=8)  # no U+0000


def spelt(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A valid string value as JSON text, spelt in any of three ways."""
    return st.one_of(text.map(json.dumps), text.map(lambda s: json.dumps(s, ensure_ascii=False)), text.map(_escaped))


def valid_timestamps(low: int = 2000, high: int = 2099) -> st.SearchStrategy[str]:
    from datetime import datetime, timedelta, timezone

    offsets = st.sampled_from([None, 0, 60, -90, 14 * 60])
    return st.builds(
        lambda d, sep, off, fraction: (d.replace(microsecond=0 if not fraction else d.microsecond, tzinfo=None
                                                 if off is None else timezone(timedelta(minutes=off)))
                                       .isoformat(sep=sep).replace("+00:00", "Z" if fraction else "+00:00")),
        st.datetimes(datetime(low, 1, 2), datetime(high, 12, 30)), st.sampled_from("T "), offsets, st.booleans(),
    ).map(json.dumps)


def valid_objects() -> st.SearchStrategy[str]:
    leaves = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | CLEAN
    values = st.recursive(leaves, lambda c: st.lists(c, max_size=3) | st.dictionaries(CLEAN, c, max_size=3),
                          max_leaves=8)
    return st.one_of(st.just("null"), st.dictionaries(CLEAN, values, max_size=4).map(
        lambda d: json.dumps(d, ensure_ascii=False)), st.dictionaries(CLEAN, values, max_size=3).map(json.dumps))


def decimals(low: int, high: int, places: int) -> st.SearchStrategy[str]:
    return st.one_of(st.just("null"), st.integers(low, high - 1).map(str),
                     st.decimals(low, high - 1, places=places).map(str),
                     st.decimals(low, high - 1, places=places).map(lambda d: f"{d}0"))


def gadget_values() -> dict[str, tuple[st.SearchStrategy[str], st.SearchStrategy[str]]]:
    """Each field: (a valid value, any value) as JSON text."""
    return {
        "code": (spelt(st.from_regex(r"G-[0-9]{3}", fullmatch=True)),
                 strings(["G-001", "G-999", "G-01", "g-001", "G-0001", "G-00\u0661"])),
        "kind": (spelt(st.sampled_from(["a", "b:c", "é"])) | st.just("null"), strings(["a", "b:c", "é", "b", ""])),
        "note": (spelt(CLEAN.filter(lambda s: 1 <= len(s) <= 6)), strings(["x", "abcdef", "abcdefg", "", "é:é"])),
        "at": (valid_timestamps(), timestamps()),
        "day": (st.dates(date(2000, 1, 1), date(2099, 12, 31)).map(lambda d: json.dumps(d.isoformat())),
                strings(DATES)),
        "count": (st.integers(-5, 1000).map(str), numbers()),
        "amount": (decimals(-100, 100, 3), numbers()),
        "ok": (st.sampled_from(["true", "false"]), BOOLEANS),
        "meta": (valid_objects(), objects()),
    }


def app_event_values() -> dict[str, tuple[st.SearchStrategy[str], st.SearchStrategy[str]]]:
    return {
        "event_id": (spelt(CLEAN.filter(bool)), strings(["e1", "a:b", "x" * 128, "x" * 129, ""])),
        "user_id": (st.integers(1, 2**63 - 1).map(str), numbers()),
        "event_ts": (valid_timestamps(), timestamps()),
        "event_type": (spelt(st.sampled_from(["login", "view_page", "add_to_cart", "purchase", "signup", "logout"])),
                       strings(["login", "purchase", "Login"])),
        "value": (decimals(0, 10**16, 2), numbers()),
        "app_version": (spelt(CLEAN) | st.just("null"), strings(["1.2.3", "x" * 64, "x" * 65, ""])),
        "properties": (valid_objects(), objects()),
    }


@st.composite
def records(draw, values: dict[str, tuple[st.SearchStrategy[str], st.SearchStrategy[str]]]) -> bytes:
    """A record as JSON text: every field valid, in any order, then a few of them made absent, null or any
    value, then perhaps a duplicate key, an escaped key, an unknown field, whitespace."""
    pairs = [(json.dumps(name), draw(valid)) for name, (valid, _) in values.items()]
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
        i = draw(st.integers(0, len(pairs) - 1))
        op = draw(st.sampled_from(["absent", "null", "any", "any", "any"]))
        name = json.loads(pairs[i][0])
        pairs[i] = (pairs[i][0], None if op == "absent" else "null" if op == "null" else draw(values[name][1]))
    pairs = [(k, v) for k, v in pairs if v is not None]
    if draw(st.booleans()):
        pairs = draw(st.permutations(pairs))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        if not pairs:
            break
        op = draw(st.sampled_from(["dup", "dup_same", "escaped_key", "escaped_key", "unknown"]))
        i = draw(st.integers(0, len(pairs) - 1))
        name = json.loads(pairs[i][0])
        if op == "dup":
            other = values[name][draw(st.integers(0, 1))] if name in values else st.just("1")
            pairs.insert(draw(st.integers(0, len(pairs))), (pairs[i][0], draw(other)))
        elif op == "dup_same":
            pairs.append(pairs[i])
        elif op == "escaped_key":
            pairs[i] = (_escaped(name), pairs[i][1])
            if draw(st.booleans()):
                pairs.append((json.dumps(name), pairs[i][1]))
        else:
            pairs.append((json.dumps(draw(st.sampled_from(["x", "a:b", "", name.upper()]))), "1"))
    ws = draw(st.sampled_from(["", "", "", " ", "\t", "\r\n"]))
    text = "{" + ",".join(f"{ws}{k}{ws}:{ws}{v}" for k, v in pairs) + "}"
    if draw(st.integers(0, 5)) == 0:
        text = draw(st.sampled_from([" ", "\t", "\r"])) + text + draw(st.sampled_from(["", " "]))
    return text.encode("utf-8", "surrogatepass")


hostile_lines = st.one_of(
    event_lines(hostile=True), event_lines(hostile=False), st.binary(max_size=200),
    json_values().map(lambda v: json.dumps(v).encode()), deep_fragments().map(str.encode),
    st.lists(st.sampled_from(HOSTILE_VALUES + ["[", "]", "{", "}", ",", ":", " ", '"k"'])).map(
        lambda parts: "".join(parts).encode("utf-8", "surrogatepass")),
)


@PROPERTY
@given(st.one_of(records(app_event_values()), hostile_lines))
def test_app_events_fast_then_exact_equals_exact(line):
    assert_same(APP_EVENTS, line)
    assert outcome(NAMED.from_json_line, line) == outcome(NAMED.exact_from_json_line, line)


@PROPERTY
@given(line=records(gadget_values()))
def test_every_field_type_fast_then_exact_equals_exact(gadgets, line):
    assert_same(gadgets, line)


def test_decided_lines_of_every_type(gadgets):
    """Lines the fast path must decide (else the properties above would hold vacuously)."""
    good = (b'{"code":"G-001","kind":"b:c","note":"\xc3\xa9","at":"2026-01-01 02:00:00+02:00","day":"2026-01-01",'
            b'"count":-5,"amount":-99.125,"ok":false,"meta":{"b":[1,true,null,{"c":"d:e"}],"a":-9223372036854775808}}')
    assert gadgets.fast_values(good) is not None
    assert gadgets.fast_row(good) == gadgets.from_json_line(good) == gadgets.exact_from_json_line(good)
    minimal = b'{"code":"G-001","at":"2026-01-01T00:00:00Z","day":"2026-01-01","count":0,"ok":true,"amount":null}'
    assert gadgets.fast_values(minimal) is not None
    assert gadgets.fast_row(minimal) == gadgets.exact_from_json_line(minimal)
    for undecided in [good.replace(b'"count":-5', b'"count":-5,"count":-5'),  # duplicate key, same value
                      good.replace(b'"c":"d:e"', b'"c":"d:e","c":"d:e"'),  # duplicate nested key
                      good.replace(b'"c":"d:e"', b'"c":"d\\u003ae"'),  # an escaped ':'
                      good.replace(b"-99.125", b"1e1"), good.replace(b"true", b"1.5"), b" " + good]:
        assert gadgets.fast_values(undecided) is None and gadgets.fast_row(undecided) is None, undecided
        assert outcome(gadgets.from_json_line, undecided) == outcome(gadgets.exact_from_json_line, undecided)


def test_object_text_is_the_exact_paths_for_every_character():
    """Objects' text comes from msgspec on the fast path and json.dumps on the exact one: every character (and
    key order by code point) must come out the same."""
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    encode = msgspec.json.Encoder(order="sorted").encode
    assert encode(chars).decode() == json.dumps(chars, ensure_ascii=False, separators=(",", ":"))
    keys = {c: i for i, c in enumerate(chars[::97] + ["", "a", "ab", "b", "\U0001f600", "\uffff"])}
    assert encode(keys).decode() == json.dumps(keys, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def test_the_fast_path_decides_most_sample_lines(tmp_path: Path):
    generate_sample(tmp_path, events=5000, days=3, seed=7)
    lines = [line for path in sorted(tmp_path.rglob("*.jsonl")) for line in path.read_bytes().split(b"\n")
             if line.strip()]
    assert len(lines) >= 5000
    decided = sum(APP_EVENTS.fast_row(line) is not None for line in lines)  # type: ignore[misc]
    assert decided >= 0.9 * len(lines), f"{decided} of {len(lines)} lines decided fast"
    for line in lines[:2000]:
        assert APP_EVENTS.from_json_line(line) == APP_EVENTS.exact_from_json_line(line)
