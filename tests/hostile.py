"""A generated corpus of hostile input files: each case is (file name, bytes, expected quarantine, verdict).

Every case file carries enough good records that its bad ones stay under the 5% quarantine threshold, except
the cases meant to exceed it (verdict "rejected").
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

GOOD_PER_FILE = 60


@dataclass
class Case:
    name: str
    bad: list[tuple[bytes, str]] = field(default_factory=list)  # (raw line, expected reason code)
    verdict: str = "landed"  # or "rejected"
    good: int = GOOD_PER_FILE
    prefix: bytes = b""
    line_end: bytes = b"\n"
    trailing: bytes = b""  # bytes after the last line terminator (e.g. a truncated record)
    trailing_reason: str | None = None
    extra_good_lines: list[bytes] = field(default_factory=list)

    def content(self) -> tuple[bytes, list[tuple[int, str]]]:
        """The file's bytes and the expected (line, reason) of each quarantined record."""
        entries: list[tuple[bytes, str | None]] = [(_good(self.name, i), None) for i in range(self.good)]
        entries += [(line, None) for line in self.extra_good_lines]
        for offset, (raw, reason) in enumerate(self.bad):  # spread the bad records through the file
            entries.insert(min(len(entries), 5 + offset * 7), (raw, reason))
        expected = [(number, reason) for number, (_, reason) in enumerate(entries, start=1) if reason]
        data = self.prefix + b"".join(raw + self.line_end for raw, _ in entries) + self.trailing
        if self.trailing_reason:
            expected.append((len(entries) + 1, self.trailing_reason))
        return data, expected

    @property
    def good_rows(self) -> int:
        return 0 if self.verdict == "rejected" else self.good + len(self.extra_good_lines)


def _good(case: str, i: int, **overrides) -> bytes:
    record = {"event_id": f"{case}-{i}", "user_id": 1000 + i % 7, "event_ts": f"2026-03-0{1 + i % 5}T10:{i % 60:02d}:00Z",
              "event_type": "view_page"}
    record.update(overrides)
    return json.dumps(record, ensure_ascii=False).encode()


def _with(**fields) -> bytes:
    record = {"event_id": "x", "user_id": 1, "event_ts": "2026-03-01T00:00:00Z", "event_type": "login"}
    for k, v in fields.items():
        if v is ...:
            record.pop(k)
        else:
            record[k] = v
    return json.dumps(record, ensure_ascii=False).encode()


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
                                 b'"login","properties":{"k":1,"k":2}}', "malformed_json")]),
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
                                     (_with(event_ts="0001-01-01T00:00:00Z"), "invalid_value")]),
        Case("sql_injection", [(_with(**{sql: 1}), "unknown_field")],
             extra_good_lines=[_good("sql_injection", 900, event_id=sql, app_version=sql, properties={sql: sql})]),
        Case("unknown_fields", [(_with(colour="red"), "unknown_field"), (_with(Event_Type="login"), "unknown_field")]),
        Case("renamed_field", [( _good("renamed_field", 500 + i).replace(b'"event_ts"', b'"timestamp"'),
                                 "unknown_field") for i in range(GOOD_PER_FILE)], verdict="rejected", good=0),
        Case("every_line_bad", [(b"not json %d" % i, "malformed_json") for i in range(20)], verdict="rejected",
             good=0),
    ]


def _nest(depth: int) -> dict:
    node: dict = {"leaf": True}
    for _ in range(depth):
        node = {"n": node}
    return node
