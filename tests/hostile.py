"""Hostile input: a generated corpus of case files (each: file name, bytes, expected quarantine, verdict), and
hypothesis strategies that generate hostile lines and files for the property tests.

Every case file carries enough good records that its bad ones stay under the 5% quarantine threshold, except
the cases meant to exceed it (verdict "rejected").
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field

from hypothesis import strategies as st

GOOD_PER_FILE = 60
GOOD_PER_BAD = 20  # good records per bad one when a case has many: 1/21 stays under the 5% threshold
CSV_HEADER = b"event_id,user_id,event_ts,event_type,value,app_version,properties"  # app_events as CSV (validator)
ORDERS_HEADER = b"order_id,user_id,status,amount,currency,placed_at,updated_at,is_gift"


@dataclass
class Case:
    name: str
    bad: list[tuple[bytes, str]] = field(default_factory=list)  # (raw line, expected reason code)
    verdict: str = "landed"  # or "rejected"
    good: int | None = None  # good records (default: enough for the bad ones to stay under the threshold)
    prefix: bytes = b""
    line_end: bytes = b"\n"
    trailing: bytes = b""  # bytes after the last line terminator (e.g. a truncated record)
    trailing_reason: str | None = None
    extra_good_lines: list[bytes] = field(default_factory=list)
    suffix: str = ".jsonl"  # ".csv": a header line first, good records as CSV rows

    def __post_init__(self):
        if self.good is None:
            self.good = max(GOOD_PER_FILE, GOOD_PER_BAD * len(self.bad) - len(self.extra_good_lines))

    @property
    def file_name(self) -> str:
        return self.name + self.suffix

    @property
    def source(self) -> str:
        """The reference source whose contract the file is for: JSONL cases are app events, CSV ones orders."""
        return "orders" if self.suffix == ".csv" else "app_events"

    @property
    def source_file(self) -> str:
        """The file's path under the landing dir, where its source's `landing` glob routes it."""
        return f"{self.source}/{self.file_name}"

    def content(self) -> tuple[bytes, list[tuple[int, str]]]:
        """The file's bytes and the expected (line, reason) of each quarantined record."""
        data, quarantined = self.content_with_raw()
        return data, [(number, reason) for number, reason, _ in quarantined]

    def content_with_raw(self) -> tuple[bytes, list[tuple[int, str, bytes]]]:
        """The file's bytes and the expected (line, reason, raw bytes as delivered) of each quarantined record."""
        good = _good_order if self.suffix == ".csv" else _good
        entries: list[tuple[bytes, str | None]] = [(good(self.name, i), None) for i in range(self.good or 0)]
        entries += [(line, None) for line in self.extra_good_lines]
        for offset, (raw, reason) in enumerate(self.bad):  # spread the bad records through the file
            entries.insert(min(len(entries), 5 + offset * 7), (raw, reason))
        if self.suffix == ".csv":
            entries.insert(0, (ORDERS_HEADER, None))
        expected = [(number, reason, raw) for number, (raw, reason) in enumerate(entries, start=1) if reason]
        data = self.prefix + b"".join(raw + self.line_end for raw, _ in entries) + self.trailing
        if self.trailing_reason:
            expected.append((len(entries) + 1, self.trailing_reason, self.trailing))
        return data, expected

    @property
    def good_rows(self) -> int:
        return 0 if self.verdict == "rejected" else (self.good or 0) + len(self.extra_good_lines)


def _good(case: str, i: int, **overrides) -> bytes:
    record = {"event_id": f"{case}-{i}", "user_id": 1000 + i % 7,
              "event_ts": f"2026-03-0{1 + i % 5}T10:{i % 60:02d}:00Z", "event_type": "view_page"}
    record.update(overrides)
    return json.dumps(record, ensure_ascii=False).encode()


def _good_order(case: str, i: int) -> bytes:
    return (f"{case}-{i},{1000 + i % 7},paid,{i % 90}.{i % 100:02d},EUR,2026-03-0{1 + i % 5}T10:{i % 60:02d}:00Z,"
            f"2026-03-0{1 + i % 5}T11:{i % 60:02d}:00Z,").encode()


def _good_csv(case: str, i: int) -> bytes:
    return f"{case}-{i},{1000 + i % 7},2026-03-0{1 + i % 5}T10:{i % 60:02d}:00Z,view_page,,,".encode()


def _with(**fields) -> bytes:
    record = {"event_id": "x", "user_id": 1, "event_ts": "2026-03-01T00:00:00Z", "event_type": "login"}
    for k, v in fields.items():
        if v is ...:
            record.pop(k)
        else:
            record[k] = v
    return json.dumps(record, ensure_ascii=False).encode()


def _with_raw(name: str, raw: bytes, **fields) -> bytes:
    """A record whose field `name` is written as the raw JSON text `raw` (which json.dumps would not write)."""
    marker = "\ue000raw\ue000"
    return _with(**{name: marker}, **fields).replace(json.dumps(marker, ensure_ascii=False).encode(), raw)


def _nest(depth: int) -> dict:
    node: dict = {"leaf": True}
    for _ in range(depth):
        node = {"n": node}
    return node


def _deep(depth: int, closed: bool = True) -> bytes:
    """A JSON array nested `depth` levels deep (unclosed: its brackets never close)."""
    return b"[" * depth + (b"]" * depth if closed else b"")


def _deep_objects(depth: int, closed: bool = True) -> bytes:
    return b'{"a":' * depth + b"1" + (b"}" * depth if closed else b"")


# The record itself is one level; properties=_nest(d) is d + 1 more: the whole line is d + 2 deep.
DEPTH_64 = _with(properties=_nest(62))
DEPTH_65 = _with(properties=_nest(63))
# Two deliveries of one key: the first lands, the later (another batch, another payload) is a conflict whose
# raw text must be kept exactly as delivered: spacing, key order, escapes and properties included.
CONFLICT_FIRST = (b'{"event_id":"conflict-1","user_id":77,"event_ts":"2026-03-02T08:00:00Z","event_type":"purchase",'
                  b'"value":5.00,"properties":{"cart":[1,2],"note":"first"}}')
CONFLICT_LATER = ('  {"event_type" : "purchase", "event_id":"conflict-1","user_id":77,'
                  '"event_ts":"2026-03-02T10:00:00+02:00","value":6, '
                  '"properties":{"note":"sp\u00e4ter \\u00e9 \U0001f600",'
                  '"cart":[1, 2, 3e2]}}\t').encode()


def corpus() -> list[Case]:
    sql = "'; drop table raw.app_events; --"
    return [
        Case("malformed_json", [(b'{"event_id": "a", "user_id": 1,', "malformed_json"),
                                (b"{'single': 'quotes'}", "malformed_json")]),
        Case("truncated_last_line", trailing=b'{"event_id":"t","user_id":1,"event_ts":"2026-03-01T00:0',
             trailing_reason="malformed_json"),
        Case("invalid_utf8", [(b'{"event_id":"\xc3\x28","user_id":1}', "invalid_utf8"),
                              (b'{"event_id":"\xed\xa0\x80"}', "invalid_utf8")]),
        Case("nul_bytes", [(b'{"event_id":"a\x00b","user_id":1}', "malformed_json"),
                           (_with(event_id="a\u0000b"), "invalid_value"),
                           (_with(properties={"k\u0000": 1}), "invalid_value")]),
        Case("bom", prefix=b"\xef\xbb\xbf"),
        Case("crlf", line_end=b"\r\n"),
        Case("empty_file", good=0),
        Case("ten_megabyte_line", [(_with(properties={"blob": "x" * (10 * 1024 * 1024)}), "oversized_record")]),
        Case("deeply_nested", [(_with()[:-1] + b',"properties":{"a":' + b"[" * 200_000 + b"]" * 200_000 + b"}}",
                                "invalid_value"),
                               (_with()[:-1] + b',"properties":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001,
                                "invalid_value")],
             extra_good_lines=[_good("deeply_nested", 999, properties=_nest(40))]),
        Case("duplicate_keys", [(b'{"event_id":"a","event_id":"b","user_id":1,"event_ts":"2026-03-01T00:00:00Z",'
                                 b'"event_type":"login"}', "malformed_json"),
                                (b'{"event_id":"a","user_id":1,"event_ts":"2026-03-01T00:00:00Z","event_type":'
                                 b'"login","properties":{"k":1,"k":2}}', "malformed_json"),
                                (b'{"event_id":"a","\\u0065vent_id":"b","user_id":1,"event_ts":"2026-03-01T00:00:00Z",'
                                 b'"event_type":"login"}', "malformed_json")]),
        Case("numbers_as_strings", [(_with(user_id="42"), "wrong_type"), (_with(value="9.99"), "wrong_type")]),
        Case("strings_as_numbers", [(_with(event_id=42), "wrong_type"), (_with(event_ts=20260301), "wrong_type"),
                                    (_with(app_version=3.1), "wrong_type")]),
        Case("huge_integers", [(_with(user_id=10 ** 30), "invalid_value"),
                               (b'{"event_id":"x","user_id":' + b"9" * 5000 + b',"event_ts":"2026-03-01T00:00:00Z",'
                                b'"event_type":"login"}', "invalid_value"),
                               (_with(event_type="purchase")[:-1] + b',"value":1e400}', "invalid_value")]),
        Case("nan_infinity", [(_with()[:-1] + b',"value":NaN}', "malformed_json"),
                              (_with()[:-1] + b',"value":-Infinity}', "malformed_json")]),
        Case("odd_offsets", [(_with(event_ts="2026-03-01T00:00:00+24:00"), "invalid_value"),
                             (_with(event_ts="2026-03-01T00:00:00+05:60"), "invalid_value")],
             extra_good_lines=[_good("odd_offsets", 900, event_ts="2026-03-01T23:59:00+23:59"),
                               _good("odd_offsets", 901, event_ts="2026-03-01T00:00:00-00:00"),
                               _good("odd_offsets", 902, event_ts="2026-03-01 00:00:00.5+05:45")]),
        Case("far_past_and_future", [(_with(event_ts="1970-01-01T00:00:00Z"), "invalid_value"),
                                     (_with(event_ts="9999-12-31T23:59:59Z"), "invalid_value"),
                                     (_with(event_ts="0001-01-01T00:00:00Z"), "invalid_value"),
                                     (_with(event_ts="0001-01-01T00:00:00+01:00"), "invalid_value"),  # UTC overflow
                                     (_with(event_ts="9999-12-31T23:59:59-01:00"), "invalid_value")]),
        Case("sql_injection", [(_with(**{sql: 1}), "unknown_field")],
             extra_good_lines=[_good("sql_injection", 900, event_id=sql, app_version=sql, properties={sql: sql})]),
        Case("unknown_fields", [(_with(colour="red"), "unknown_field"), (_with(Event_Type="login"), "unknown_field")]),
        # --- hardening: each of these crashed `evident land`, or got the wrong reason code
        Case("lone_surrogates", [(_with_raw("app_version", b'"\\ud800"'), "malformed_json"),
                                 (_with_raw("event_id", b'"a\\udc00b"'), "malformed_json"),
                                 (_with_raw("event_id", b'"e\\ud83d"'), "malformed_json"),  # high half, no low
                                 (_with_raw("properties", b'{"k":"\\ud800x"}'), "malformed_json"),
                                 (_with_raw("properties", b'{"deep":[{"\\uDFFF":1}]}'), "malformed_json"),
                                 (_with_raw("colour", b'"\\ud800"'), "malformed_json")],  # before unknown_field
             extra_good_lines=[_good("lone_surrogates", 900).replace(b'"view_page"', b'"view_page","app_version":'
                                                                     b'"\\\\ud800"'),  # an escaped backslash
                               _good("lone_surrogates", 901).replace(b'"view_page"', b'"view_page","properties":'
                                                                     b'{"e":"\\ud83d\\ude00"}')]),  # a real pair
        Case("huge_exponents", [(_with_raw("value", b"1e999999999999", event_type="purchase"), "invalid_value"),
                                (_with_raw("value", b"1e9999999999999999999", event_type="purchase"), "invalid_value"),
                                (_with_raw("value", b"-1E+9999999999999999999", event_type="purchase"),
                                 "invalid_value"),
                                (_with_raw("user_id", b"1e999999999999"), "wrong_type"),
                                (_with_raw("user_id", b"1e9999999999999999999"), "wrong_type")],
             extra_good_lines=[_good("huge_exponents", 900).replace(b'"view_page"', b'"view_page","properties":'
                                                                    b'{"x":1e9999999999999999999}'),
                               _good("huge_exponents", 901).replace(b'"view_page"', b'"view_page","properties":'
                                                                    b'{"x":-1e999999999999,"y":1e-9999999999999999999}'),
                               _good("huge_exponents", 902, event_type="purchase").replace(
                                   b'"purchase"', b'"purchase","value":0e-9999999999999999999')]),  # zero is zero
        Case("whitespace_around_values", [(b"\x0c" + _with(), "malformed_json"),  # form feed: not JSON whitespace
                                          (b"\xc2\xa0" + _with(), "malformed_json"),  # nor is U+00A0
                                          (_with() + b" x", "malformed_json")],
             extra_good_lines=[b"  " + _good("whitespace_around_values", 900),
                               b"\t" + _good("whitespace_around_values", 901) + b" \t ",
                               b" \r " + _good("whitespace_around_values", 902),
                               _good("whitespace_around_values", 903).replace(b", ", b" ,\t\r ")
                               .replace(b'":', b'" : ')]),
        Case("unclosed_deep_nesting", [(_with_raw("properties", b'{"a":' + _deep(100_000, closed=False)),
                                        "malformed_json"),
                                       (_with_raw("properties", _deep_objects(50_000, closed=False)), "malformed_json"),
                                       (_deep(100_000, closed=False), "malformed_json"),
                                       (_deep(100_000) + b"]", "malformed_json"),
                                       (_with_raw("properties", b'{"a":' + _deep(5000)[:-1] + b",]}"),
                                        "malformed_json"),
                                       (_with_raw("properties", b'{"a":' + b"[" * 3000 + b"NaN" + b"]" * 3000 + b"}"),
                                        "malformed_json"),
                                       (_with_raw("properties", b'{"k":1,"k":' + _deep_objects(3000) + b"}"),
                                        "malformed_json"),
                                       (_with_raw("properties", b'{"a":' + b"[" * 3000 + b'"\\ud800"' + b"]" * 3000
                                                  + b"}"), "malformed_json")]),
        Case("depth_limit", [(DEPTH_65, "invalid_value"),
                             (_deep(65), "invalid_value"),  # depth before wrong_type
                             (_with_raw("colour", _deep(70)), "invalid_value"),  # before unknown_field
                             (_with_raw("user_id", _deep(900)), "invalid_value"),  # before wrong_type
                             (_with_raw("properties", b'{"a":' + _deep(900) + b"}"), "invalid_value")],
             extra_good_lines=[DEPTH_64.replace(b'"x"', b'"depth-64"')]),
        Case("top_level_arrays", [(_deep(64), "wrong_type"), (b"[]", "wrong_type"), (b"  7 ", "wrong_type")]),
        Case("exact_decimals", [(_with_raw("value", b"123e-10000000", event_type="purchase"), "invalid_value"),
                                (_with_raw("value", b"1e-400", event_type="purchase"), "invalid_value"),
                                (_with_raw("value", b"0.001", event_type="purchase"), "invalid_value"),
                                (_with_raw("value", b"1.0000000000000000000000000000001", event_type="purchase"),
                                 "invalid_value")],
             extra_good_lines=[_good("exact_decimals", 900, event_type="purchase").replace(
                                   b'"purchase"', b'"purchase","value":1.2300000000000000000000000000000'),
                               _good("exact_decimals", 901, event_type="purchase").replace(
                                   b'"purchase"', b'"purchase","value":12.5e-1'),
                               _good("exact_decimals", 902, event_type="purchase").replace(
                                   b'"purchase"', b'"purchase","value":0e-10000000')]),
        Case("nul_order", [(_with(colour="a\u0000"), "unknown_field"),  # unknown_field comes first
                           (_with(user_id="1", properties={"k": "\u0000"}), "wrong_type"),  # user_id precedes
                           (_with(event_type=..., properties={"\u0000": 1}), "missing_field")]),
        Case("conflict_earlier_batch_1", extra_good_lines=[CONFLICT_FIRST]),
        Case("conflict_earlier_batch_2", [(CONFLICT_LATER, "conflicting_duplicate")]),
        Case("csv_cell_count",
             [(b"csv-short,1,paid,1.00,EUR,2026-03-01T00:00:00Z", "malformed_csv"),
              (b"csv-long,1,paid,1.00,EUR,2026-03-01T00:00:00Z,2026-03-01T01:00:00Z,,extra", "malformed_csv"),
              (b'csv-quote,1,paid,"1.00"0,EUR,2026-03-01T00:00:00Z,2026-03-01T01:00:00Z,', "malformed_csv"),
              (b"csv-utf8-\xff,1,paid,1.00,EUR,2026-03-01T00:00:00Z,2026-03-01T01:00:00Z,", "invalid_utf8"),
              (b"csv-type,one,paid,1.00,EUR,2026-03-01T00:00:00Z,2026-03-01T01:00:00Z,", "wrong_type"),
              (b"csv-pattern,1,paid,1.00,usd,2026-03-01T00:00:00Z,2026-03-01T01:00:00Z,", "invalid_value")],
             extra_good_lines=[b'"csv,quoted",1,shipped,1.50,EUR,2026-03-01T00:00:00Z,2026-03-01T01:00:00Z,true'],
             suffix=".csv", line_end=b"\r\n", prefix=b"\xef\xbb\xbf"),
        Case("renamed_field", [(_good("renamed_field", 500 + i).replace(b'"event_ts"', b'"timestamp"'),
                                "unknown_field") for i in range(GOOD_PER_FILE)], verdict="rejected", good=0),
        Case("every_line_bad", [(b"not json %d" % i, "malformed_json") for i in range(20)], verdict="rejected",
             good=0),
    ]


# ------------------------------------------------------------------------ hypothesis: hostile lines and files

EVENT_TYPES = ("login", "view_page", "add_to_cart", "purchase", "signup", "logout")
JSON_WS = st.sampled_from(["", " ", "\t", "\r", "  ", " \t\r "])
# Values that are strict JSON but hostile to a validator (huge or tiny numbers, escapes, odd times, U+0000) …
STRICT_HOSTILE_VALUES = [
    '"\\ud83d\\ude00"', '"\\\\ud800"', '"\\u0000"', '"a\\u0000"', '"\\u00e9"', '"\u2028"', '"\\/"',
    "1e999999999999", "1e9999999999999999999", "-1e9999999999999999999", "1E+400", "123e-10000000", "1e-400",
    "0e-99999999999999999999", "1" * 400, "-0", "0", "-1", "1.0", "1E2", "9.999", "0.1e1", "1.50", "2e-2",
    "9223372036854775807", "9223372036854775808", "9999999999999999.99", "10000000000000000",
    "true", "false", "null", "[]", "{}", '[1,"a",null]', '{"a":[1,2,{"b":null}]}', '{"a":{"b":{"\\u0000":1}}}',
    '""', '"x"', '"2026-02-30T00:00:00Z"', '"0001-01-01T00:00:00+01:00"', '"9999-12-31T23:59:59-01:00"',
    '"2026-01-01T00:00:00+05:60"', '"2026-01-01 00:00:00"', '"2026-01-01T00:00:00.1234567Z"', '"2026-01-01"',
    '"Purchase"', '"login"', '"' + "x" * 129 + '"',
]
# … and values that are not strict JSON at all.
BROKEN_VALUES = [
    '"\\ud800"', '"a\\udc00b"', '"\\ud83d"', '{"\\ud800":1}', '"a\x01b"', '"tab\tin"', "NaN", "-Infinity",
    "Infinity", "01", "1.", "-", "+1", ".5", '{"k":1,"k":2}', '"\\"', '"', "[1,]", "{,}", "tru", "nul",
]
HOSTILE_VALUES = STRICT_HOSTILE_VALUES + BROKEN_VALUES


def deep_fragments() -> st.SearchStrategy[str]:
    depths = st.sampled_from([1, 2, 62, 63, 64, 65, 66, 200, 990, 1000, 5000, 100_000])
    return st.builds(
        lambda depth, kind, closed, inner: (
            ("[" * depth + inner + ("]" * depth if closed else ""))
            if kind == "array" else ('{"a":' * depth + inner + ("}" * depth if closed else ""))),
        depths, st.sampled_from(["array", "object"]), st.integers(0, 2).map(bool),
        st.sampled_from(["1", "", "1", '"x"', '"\\ud800"', "NaN"]))


def json_values(text: st.SearchStrategy[str] | None = None) -> st.SearchStrategy:
    text = text if text is not None else st.text(max_size=20)
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
        max_leaves=12,
    )


CLEAN_TEXT = st.text(st.characters(exclude_characters="\x00"), max_size=8)  # no U+0000: storable as is


# A narrow key space (so that deliveries of one key recur within and across files): two spellings of one instant.
_INSTANTS = (("2026-01-01T00:00:00Z", "2026-01-01 02:00:00+02:00", "2026-01-01T00:00:00.000000+00:00"),
             ("2099-12-31T23:59:59.999999Z", "2100-01-01T00:59:59.999999+01:00"))
_VALUES = (None, 0, 1, "1.5", "19.99", "9999999999999999.99")


@st.composite
def valid_events(draw) -> dict:
    """A valid app event. Half of them come from a narrow key space with a payload that is mostly a function of
    the key, so exact duplicates are common and conflicting ones (another payload) happen now and then."""
    if draw(st.booleans()):
        instant = draw(st.integers(0, len(_INSTANTS) - 1))
        event = {"event_id": draw(st.sampled_from(["e0", "e1", "\u00e9\u4e2d\U0001f600", "'; --"])),
                 "user_id": draw(st.sampled_from([1, 2**63 - 1])),
                 "event_ts": draw(st.sampled_from(_INSTANTS[instant])),
                 "event_type": draw(st.sampled_from(["purchase", "login"]))}
        if draw(st.integers(0, 24)):  # the key's usual payload
            seed = zlib.crc32(repr((event["event_id"], event["user_id"], instant, event["event_type"])).encode())
            for name, value in (("value", _VALUES[seed % 6]), ("app_version", f"v{seed % 5}"),
                                ("properties", {"k": seed % 3, "s": "\u00e9"} if seed % 2 else None)):
                if value is not None:
                    event[name] = _Raw(value) if isinstance(value, str) and name == "value" else value
            return event
    else:
        event = {"event_id": draw(st.text(st.characters(exclude_characters="\x00"), min_size=1, max_size=12)),
                 "user_id": draw(st.integers(1, 2**63 - 1)),
                 "event_ts": draw(st.sampled_from([t for spellings in _INSTANTS for t in spellings]
                                                  + ["2026-01-02T03:04:05.123456Z", "2000-01-01T00:00:00Z"])),
                 "event_type": draw(st.sampled_from(EVENT_TYPES))}
    if draw(st.booleans()):
        value = draw(st.sampled_from(_VALUES))
        event["value"] = _Raw(value) if isinstance(value, str) else value
    if draw(st.booleans()):
        event["app_version"] = draw(st.none() | CLEAN_TEXT)
    if draw(st.booleans()):
        event["properties"] = draw(st.none() | st.dictionaries(CLEAN_TEXT, json_values(CLEAN_TEXT), max_size=3))
    return event


class _Raw(str):
    """A JSON number written as is."""


def _dump(value) -> str:
    if isinstance(value, _Raw):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


@st.composite
def event_lines(draw, hostile: bool, event: dict | None = None) -> bytes:
    """One line: a valid event (`event`, or a new one), or (hostile) a mutation of one, arbitrary JSON, or
    arbitrary bytes."""
    if hostile:
        kind = draw(st.sampled_from(["mutation"] * 6 + ["json", "bytes", "deep"]))
        if kind == "json":
            return json.dumps(draw(json_values()), ensure_ascii=draw(st.booleans())).encode()
        if kind == "bytes":
            return draw(st.binary(max_size=120))
        if kind == "deep":
            return draw(deep_fragments()).encode()
    if event is None:
        event = draw(valid_events())
    pairs = [(json.dumps(k, ensure_ascii=False), _dump(v)) for k, v in event.items()]
    if hostile:
        for _ in range(draw(st.integers(1, 2))):
            op = draw(st.sampled_from(["value"] * 4 + ["unknown"] * 2 + ["deep", "dup_key", "escaped_key", "drop",
                                                                         "surrogate_key"]))
            i = draw(st.integers(0, len(pairs) - 1))
            if op == "value":
                broken = draw(st.integers(0, 3)) == 0
                pairs[i] = (pairs[i][0], draw(st.sampled_from(BROKEN_VALUES if broken else STRICT_HOSTILE_VALUES)))
            elif op == "deep":
                pairs[i] = (pairs[i][0], draw(deep_fragments()))
            elif op == "dup_key":
                pairs.append((pairs[i][0], draw(st.sampled_from(STRICT_HOSTILE_VALUES + [pairs[i][1]]))))
            elif op == "escaped_key":  # the same key spelled with an escape: still a duplicate if both occur
                name = json.loads(pairs[i][0])
                if name:
                    escaped = f'"\\u{ord(name[0]):04x}' + json.dumps(name, ensure_ascii=False)[2:]
                    pairs.append((escaped, pairs[i][1]))
            elif op == "unknown":
                pairs.append((json.dumps(draw(st.text(max_size=6)), ensure_ascii=False),
                              draw(st.sampled_from(STRICT_HOSTILE_VALUES))))
            elif op == "drop" and len(pairs) > 1:
                pairs.pop(i)
            elif op == "surrogate_key":
                pairs.append(('"\\udc80"', "1"))
    sep = draw(JSON_WS) if hostile else ""
    text = "{" + ",".join(f"{sep}{k}{sep}:{sep}{v}{sep}" for k, v in pairs) + "}"
    if draw(st.booleans()):
        text = draw(JSON_WS) + text + draw(JSON_WS)  # whitespace around the value is allowed
    line = text.encode("utf-8", "surrogatepass")
    if hostile and draw(st.integers(0, 3)) == 0:  # a byte-level mutation
        op = draw(st.sampled_from(["insert", "truncate", "bom", "cr", "nul", "nbsp"]))
        at = draw(st.integers(0, len(line)))
        not_utf8 = st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80"])
        insert = {"insert": draw(not_utf8), "bom": b"\xef\xbb\xbf", "cr": b"\r", "nul": b"\x00",
                  "nbsp": b"\xc2\xa0"}.get(op)
        line = line[:at] if op == "truncate" else line[:at] + insert + line[at:]
    return line


@st.composite
def landing_files(draw, max_files: int = 3, max_lines: int = 60) -> dict[str, bytes]:
    """A few JSONL files (name → bytes) of mostly valid events with hostile lines mixed in, and file-level
    quirks: a BOM, CRLF line ends, blank lines, no final newline (a truncated or complete last line)."""
    files = {}
    delivered: list[dict] = []  # valid events of the earlier files
    for f in range(draw(st.integers(1, max_files))):
        events = [draw(valid_events()) for _ in range(draw(st.integers(0, max_lines)))]
        if delivered and draw(st.booleans()):  # a redelivery of earlier events: exact copies, one maybe changed
            copies = draw(st.lists(st.sampled_from(delivered), min_size=1, max_size=5))
            if draw(st.booleans()):
                copies[0] = {**copies[0], "app_version": "changed"}  # the same key, another payload
            for copy in copies:
                events.insert(draw(st.integers(0, len(events))), copy)
        delivered += events
        lines = [draw(event_lines(hostile=False, event=event)) for event in events]  # spelt anew: same payload
        # about as many hostile lines as the 5% quarantine threshold allows, sometimes a few more
        for _ in range(draw(st.integers(0, max(1, len(lines) // 16)))):
            lines.insert(draw(st.integers(0, len(lines))), draw(event_lines(hostile=True)))
        for _ in range(draw(st.integers(0, 2))):
            lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from([b"", b"  ", b"\t", b" \r"])))
        end = draw(st.sampled_from([b"\n", b"\r\n"]))
        data = end.join(lines)
        if draw(st.booleans()):
            data += end  # else the last line has no line end (fine if complete, malformed if truncated)
        if draw(st.integers(0, 3)) == 0:
            data = b"\xef\xbb\xbf" + data
        files[f"{f:02d}-{draw(st.sampled_from(['a', 'b']))}.jsonl"] = data
    return files


def delivered_lines(data: bytes) -> list[tuple[int, bytes]]:
    """The spec of a file's records, restated independently of evident.land.records: (physical line number,
    bytes as delivered) of every line that is not whitespace only; a leading BOM ignored, LF or CRLF ends."""
    if data[:3] == b"\xef\xbb\xbf":
        data = data[3:]
    out = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        line = line[:-1] if line[-1:] == b"\r" else line
        if line.strip(b" \t\r\n\x0b\x0c"):
            out.append((number, line))
    return out


def stored_raw_text(line: bytes) -> str:
    """The documented escaping of a quarantined line: bytes that are not UTF-8 as \\xNN, NUL as \\x00."""
    return line.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
