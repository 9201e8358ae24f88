"""Validate raw records against a contract: each becomes a typed row or a Rejection with a reason code.

Reason codes (DESIGN): oversized_record, invalid_utf8, malformed_json, wrong_type, unknown_field,
missing_field, invalid_value. conflicting_duplicate is decided later, against landed rows.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import NamedTuple
from datetime import datetime
from decimal import Decimal, InvalidOperation

from evident.land.contracts import Contract, FieldRule
from evident.land.keys import idempotency_key, payload_sha256
from evident.errors import Rejection

# The shape of the contract's timestamp; the calendar (Feb 30, hour 24) is left to fromisoformat, but the
# offset's minutes are checked here because fromisoformat reads +05:60 as +06:00.
_TS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-5][0-9])?"
)
_CSV_INT = re.compile(r"[+-]?[0-9]+")
_CSV_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_MAX_INT_DIGITS = 40  # longer integers are out of every range; don't let int() parse megabytes of digits
_CENT = Decimal("0.01")




@dataclass(frozen=True)
class _HugeInt:
    digits: str


def _reject_constant(token: str):
    raise ValueError(f"{token} is not valid JSON")


def _unique_pairs(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dupe = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"duplicate key {dupe!r} in one object")
    return obj


def _parse_int(text: str):
    return int(text) if len(text) <= _MAX_INT_DIGITS else _HugeInt(text)


_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_pairs, parse_float=Decimal, parse_int=_parse_int, parse_constant=_reject_constant
)


def parse_json_line(line: bytes, max_bytes: int) -> object:
    if len(line) > max_bytes:
        raise Rejection("oversized_record", f"record is {len(line)} bytes, over the {max_bytes}-byte limit")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejection("invalid_utf8", f"not valid UTF-8 at byte {exc.start}") from None
    try:
        obj, end = _DECODER.raw_decode(text)
        if text[end:].strip(" \t\r\n"):
            raise ValueError(f"extra data after the JSON value at column {end + 1}")
    except RecursionError:
        raise Rejection("invalid_value", "JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise Rejection("malformed_json", f"not strict JSON: {exc}") from None
    if "\\u0000" in text and _contains_nul(obj):
        raise Rejection("invalid_value", "a string contains U+0000, which Postgres cannot store")
    return obj


def _contains_nul(obj) -> bool:
    if isinstance(obj, str):
        return "\x00" in obj
    if isinstance(obj, dict):
        return any("\x00" in k or _contains_nul(v) for k, v in obj.items())
    if isinstance(obj, list):
        return any(_contains_nul(v) for v in obj)
    return False


def canonical_json(obj) -> str:
    """Sorted keys, no whitespace, numbers as written: equal objects give equal text on every engine."""
    if isinstance(obj, dict):
        items = sorted(obj.items())
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical_json(v) for k, v in items) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(canonical_json(v) for v in obj) + "]"
    if isinstance(obj, _HugeInt):
        return obj.digits
    if isinstance(obj, Decimal):
        return str(obj)
    return json.dumps(obj, ensure_ascii=False)


def _check_string(rule: FieldRule, value) -> str:
    if not isinstance(value, str):
        raise Rejection("wrong_type", f"{rule.name} must be a JSON string, got {_json_type(value)}")
    if rule.min_length is not None and len(value) < rule.min_length:
        raise Rejection("invalid_value", f"{rule.name} is shorter than {rule.min_length} characters")
    if rule.max_length is not None and len(value) > rule.max_length:
        raise Rejection("invalid_value", f"{rule.name} is longer than {rule.max_length} characters")
    if rule.enum is not None and value not in rule.enum:
        raise Rejection("invalid_value", f"{rule.name} {value[:64]!r} is not one of {sorted(rule.enum)}")
    if "\x00" in value:
        raise Rejection("invalid_value", f"{rule.name} contains U+0000")
    return value


def _check_bounds(rule: FieldRule, value, shown) -> None:
    if rule.minimum is not None and value < rule.minimum:
        raise Rejection("invalid_value", f"{rule.name} {shown} is below the minimum {rule.minimum}")
    if rule.maximum is not None and value > rule.maximum:
        raise Rejection("invalid_value", f"{rule.name} {shown} is above the maximum {rule.maximum}")
    if rule.maximum_exclusive is not None and value >= rule.maximum_exclusive:
        raise Rejection("invalid_value", f"{rule.name} {shown} is not below {rule.maximum_exclusive}")


def _check_integer(rule: FieldRule, value) -> int:
    if isinstance(value, _HugeInt):
        raise Rejection("invalid_value", f"{rule.name} has {len(value.digits)} digits, out of range")
    if not isinstance(value, int) or isinstance(value, bool):
        raise Rejection("wrong_type", f"{rule.name} must be a JSON integer, got {_json_type(value)}")
    _check_bounds(rule, value, value)
    return value


def _check_decimal(rule: FieldRule, value) -> Decimal:
    if isinstance(value, _HugeInt):
        raise Rejection("invalid_value", f"{rule.name} has {len(value.digits)} digits, out of range")
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise Rejection("wrong_type", f"{rule.name} must be a JSON number, got {_json_type(value)}")
    number = Decimal(value)
    if not number.is_finite():
        raise Rejection("invalid_value", f"{rule.name} is not finite")
    _check_bounds(rule, number, number)
    if rule.max_decimal_places is not None and number.normalize().as_tuple().exponent < -rule.max_decimal_places:
        raise Rejection("invalid_value", f"{rule.name} {number} has more than {rule.max_decimal_places} decimal places")
    return number


def _check_timestamp(rule: FieldRule, value) -> datetime:
    if not isinstance(value, str):
        raise Rejection("wrong_type", f"{rule.name} must be a timestamp string, got {_json_type(value)}")
    if _TS.fullmatch(value) is None:
        raise Rejection("invalid_value", f"{rule.name} {value[:64]!r} is not YYYY-MM-DD(T| )HH:MM:SS[.ffffff][Z|±HH:MM]")
    try:
        # The regex fixed the shape; fromisoformat (C) checks the calendar and the offset's range.
        ts = datetime.fromisoformat(value)
    except ValueError as exc:
        raise Rejection("invalid_value", f"{rule.name} {value!r} is not a real calendar time ({exc})") from None
    if ts.tzinfo is not None:
        ts = (ts - ts.utcoffset()).replace(tzinfo=None)
    _check_bounds(rule, ts, value)
    return ts


def _check_object(rule: FieldRule, value) -> str:
    if not isinstance(value, dict):
        raise Rejection("wrong_type", f"{rule.name} must be a JSON object, got {_json_type(value)}")
    try:  # fast path, same text as canonical_json when no decimals are inside
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except TypeError:
        return canonical_json(value)


_CHECKS = {
    "string": _check_string,
    "integer": _check_integer,
    "decimal": _check_decimal,
    "timestamp": _check_timestamp,
    "object": _check_object,
}


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, _HugeInt)):
        return "integer"
    if isinstance(value, Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


class Row(NamedTuple):
    """A valid app event, typed and keyed (a tuple: a million of them are built per large batch)."""

    key: str
    event_id: str
    user_id: int
    event_ts: datetime  # naive UTC
    event_type: str
    value: Decimal | None
    app_version: str | None
    properties: str | None  # canonical JSON
    payload_sha256: str


class Validator:
    def __init__(self, contract: Contract):
        self.contract = contract
        self.names = frozenset(contract.fields)
        self.required = [name for name, rule in contract.fields.items() if rule.required]
        self.plan = [(name, rule, _CHECKS[rule.type]) for name, rule in contract.fields.items()]

    def from_json_line(self, line: bytes) -> Row:
        return self.from_object(parse_json_line(line, self.contract.max_record_bytes))

    def from_csv_record(self, record: dict) -> Row:
        if "__csv_error__" in record:
            raise Rejection("malformed_json", record["__csv_error__"])
        return self.from_object({name: _csv_cell(self.contract.fields.get(name), cell) for name, cell in record.items()})

    def from_object(self, obj) -> Row:
        if not isinstance(obj, dict):
            raise Rejection("wrong_type", f"record must be a JSON object, got {_json_type(obj)}")
        if not obj.keys() <= self.names:
            unknown = next(k for k in obj if k not in self.names)
            raise Rejection("unknown_field", f"unknown field {unknown[:64]!r} (not in contract {self.contract.contract_id})")
        for name in self.required:
            if obj.get(name) is None:
                raise Rejection("missing_field", f"required field {name} is {'null' if name in obj else 'absent'}")
        typed = {}
        for name, rule, check in self.plan:
            value = obj.get(name)
            typed[name] = None if value is None else check(rule, value)
        return _row(typed)


def _csv_cell(rule: FieldRule | None, cell: str):
    """CSV cells are text: turn them into the JSON value the contract expects, or leave them as text."""
    if rule is None or rule.type == "string" or rule.type == "timestamp":
        return cell
    if rule.type == "integer" and _CSV_INT.fullmatch(cell):
        return _parse_int(cell)
    if rule.type == "decimal" and _CSV_NUMBER.fullmatch(cell):
        try:
            return Decimal(cell)
        except InvalidOperation:
            return cell
    if rule.type == "object":
        try:
            return parse_json_line(cell.encode("utf-8"), 1 << 30)
        except Rejection:
            return cell
    return cell


def _row(t: dict) -> Row:
    value = t.get("value")
    if value is not None:
        value = value.quantize(_CENT)
    key = idempotency_key(t["user_id"], t["event_ts"], t["event_type"], t["event_id"])
    # The key already covers the identifying fields; the payload hash adds the rest.
    payload = payload_sha256([key, None if value is None else str(value), t.get("app_version"), t.get("properties")])
    return Row(key, t["event_id"], t["user_id"], t["event_ts"], t["event_type"], value, t.get("app_version"),
               t.get("properties"), payload)
