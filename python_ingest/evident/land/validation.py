"""Validate raw records against a contract: each becomes a typed row or a Rejection with a reason code.

Reason codes and their order (DESIGN, "Strict JSON and reason codes"), the first that applies:
oversized_record → invalid_utf8 → malformed_json (JSONL) / malformed_csv (CSV) → invalid_value for nesting
deeper than 64 → wrong_type (not an object) → unknown_field → missing_field → per field, in contract order,
wrong_type then invalid_value. conflicting_duplicate is decided later, against landed rows (loader).

Strict JSON is RFC 8259 as restricted by I-JSON: the stdlib C decoder does the syntax (it already refuses raw
control characters in strings and, through the hooks below, NaN/Infinity and duplicate keys); lone surrogate
escapes and the nesting depth are checked here, cheaply, only on the lines that could have them. A line nested
too deeply for the C decoder (RecursionError) is checked by a small iterative parser instead, so "not strict
JSON" and "strict but too deep" are told apart at any depth.

Validator.from_json_line first asks the fast path (evident.land.fast_path, msgspec): it either returns the same
typed values this module would, or leaves the line undecided; this module (the exact path) decides the rest and
gives every rejection.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from evident.errors import Rejection
from evident.land.contracts import INT64, Contract, FieldRule
from evident.land.fast_path import compile_fast_path
from evident.land.keys import idempotency_key, payload_sha256, utc_text
from evident.land.records import CsvRecord

__all__ = ["MAX_DEPTH", "REASON_CODES", "Rejection", "Row", "Validator", "canonical_json", "parse_json_line",
           "strict_json_depth"]

REASON_CODES = frozenset({
    "oversized_record", "invalid_utf8", "malformed_json", "malformed_csv", "wrong_type", "unknown_field",
    "missing_field", "invalid_value", "conflicting_duplicate",
})
MAX_DEPTH = 64  # deeper strict JSON is invalid_value

# The shape of the contract's timestamp; the calendar (Feb 30, hour 24) is left to fromisoformat, but the
# offset's minutes are checked here because fromisoformat reads +05:60 as +06:00.
_TS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-5][0-9])?"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CSV_INT = re.compile(r"[+-]?[0-9]+")
_CSV_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_MAX_INT_DIGITS = 40  # longer integers are out of every range; don't let int() parse megabytes of digits
_CENT = Decimal("0.01")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # a pre-filter: may also match an escaped backslash
_SURROGATE = re.compile("[\ud800-\udfff]")  # in a decoded str, only a lone surrogate can be left
_SHOWN = 64  # characters of a value quoted in a message


class _BigNumber:
    """A JSON number kept as written: an integer of more than 40 digits, or one whose exponent Decimal cannot
    hold (1e9999999999999999999). Out of range for every integer and decimal field; kept exactly in objects."""

    __slots__ = ("text", "integer")

    def __init__(self, text: str, integer: bool):
        self.text, self.integer = text, integer

    def __repr__(self) -> str:
        return f"_BigNumber({_show(self.text)})"


class _Refused:
    """A CSV cell that cannot be the field's value for a reason that is invalid_value (e.g. JSON too deep)."""

    __slots__ = ("message",)

    def __init__(self, message: str):
        self.message = message


def _reject_constant(token: str):
    raise ValueError(f"{token} is not valid JSON")


def _unique_pairs(pairs):
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {_show(key)} in one object")
            seen.add(key)
    return obj


def _parse_int(text: str):
    return int(text) if len(text) <= _MAX_INT_DIGITS else _BigNumber(text, True)


def _parse_number(text: str):
    try:
        return Decimal(text)
    except InvalidOperation:  # an exponent beyond Decimal's range (not a ValueError: it would escape json)
        mantissa = text.lower().partition("e")[0]
        if not mantissa.strip("-+.0"):
            return Decimal("-0" if mantissa.startswith("-") else "0")  # zero at any exponent is zero
        return _BigNumber(text, False)


_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_pairs, parse_float=_parse_number, parse_int=_parse_int,
    parse_constant=_reject_constant,
)
_SCAN = _DECODER.scan_once  # type: ignore[attr-defined]
_JSON_WS = " \t\n\r"


def parse_json_line(line: bytes, max_bytes: int) -> object:
    """One line → its JSON value, or a Rejection: oversized_record, invalid_utf8, malformed_json, or
    invalid_value for strict JSON nested deeper than MAX_DEPTH."""
    obj = _parse(line, max_bytes)
    _refuse_deep(obj)
    return obj


def _parse(line: bytes, max_bytes: int) -> object:
    """parse_json_line without the depth rule (Validator applies it where it is cheapest, see from_json_line),
    except for lines too deep to parse at all."""
    if len(line) > max_bytes:
        raise Rejection("oversized_record", f"record is {len(line)} bytes, over the {max_bytes}-byte limit")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejection("invalid_utf8", f"not valid UTF-8 at byte {exc.start}") from None
    # Whitespace around the value is allowed, anything else after it is not. (JSONDecoder.decode does the same
    # with two regex matches; this is its fast path, and the scanner is called directly.)
    start = len(text) - len(text.lstrip(_JSON_WS))
    try:
        obj, end = _SCAN(text, start)
    except StopIteration as stop:
        raise Rejection("malformed_json", f"not strict JSON: expecting a value at column {stop.value + 1}") from None
    except RecursionError:
        raise _too_deep(strict_json_depth(text)) from None  # strict_json_depth: malformed_json unless strict
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise Rejection("malformed_json", f"not strict JSON: {exc}") from None
    if end != len(text) and text[end:].strip(_JSON_WS):
        raise Rejection("malformed_json", f"not strict JSON: extra data after the JSON value at column {end + 1}")
    # "\\" in text is a memchr; a lone surrogate can only come from an escape (the bytes were strict UTF-8)
    if "\\" in text and _SURROGATE_ESCAPE.search(text) and any(_SURROGATE.search(s) for s in _strings(obj)):
        raise Rejection("malformed_json", "not strict JSON: a lone surrogate escape (not a Unicode character)")
    return obj


def _too_deep(depth: int) -> Rejection:
    return Rejection("invalid_value", f"JSON nested {depth} levels deep, over the limit of {MAX_DEPTH}")


def _refuse_deep(obj) -> None:
    if isinstance(obj, (dict, list)):
        depth = _depth(obj)
        if depth > MAX_DEPTH:
            raise _too_deep(depth)


def _strings(obj):
    """Every string in a JSON value, object keys included (iterative: no recursion limit)."""
    stack = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            yield from node.keys()
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _depth(obj) -> int:
    """Nesting depth of a JSON value: a scalar is 0, [] and {} are 1, [[1]] is 2 (iterative)."""
    if not isinstance(obj, (dict, list)):
        return 0
    deepest = 0
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        for child in (node.values() if isinstance(node, dict) else node):
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return deepest


# ---------------------------------------------------------------- strict JSON at any depth (rare lines only)

_TOKEN = re.compile(
    r"[ \t\n\r]*(?:"
    r"(?P<str>\"[^\"\\\x00-\x1f]*(?:\\(?:[\"\\/bfnrt]|u[0-9a-fA-F]{4})[^\"\\\x00-\x1f]*)*\")"
    r"|(?P<open>\[(?:[ \t\n\r]*\[)*)"  # runs of brackets are one token: [[[[ … ]]]] costs two
    r"|(?P<close>\](?:[ \t\n\r]*\])*)"
    r"|(?P<oclose>\}(?:[ \t\n\r]*\})*)"
    r"|(?P<num>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<lit>true|false|null)"
    r"|(?P<punct>[{:,]))"
)
# Parser states: what may come next.
_VALUE, _VALUE_OR_CLOSE, _KEY_OR_CLOSE, _KEY, _COLON, _NEXT, _DONE = range(7)
_NO_KEYS = ()  # an object with no key yet; one key is kept as a str, more as a set


def strict_json_depth(text: str) -> int:
    """Nesting depth of `text` if it is strict JSON (same rules as parse_json_line), else Rejection
    (malformed_json). Iterative, for lines too deep for the C decoder; linear in the line's length."""

    def fail(what: str, at: int):
        raise Rejection("malformed_json", f"not strict JSON: {what} at column {at + 1}")

    stack: list = []  # per open container: None = array; object: _NO_KEYS, its one key, or a set of keys
    deepest = 0
    state = _VALUE
    pos = 0
    match = _TOKEN.match
    while True:
        m = match(text, pos)
        if m is None:
            break
        kind = m.lastgroup or ""  # every alternative is a named group
        if state == _DONE:
            fail("extra data after the JSON value", m.start(kind))
        token = m.group(kind)
        at = m.start(kind)
        pos = m.end()
        if kind == "open" or (kind == "punct" and token == "{"):
            if state != _VALUE and state != _VALUE_OR_CLOSE:
                fail(f"unexpected {token[0]!r}", at)
            if kind == "open":
                stack.extend([None] * token.count("["))
                state = _VALUE_OR_CLOSE
            else:
                stack.append(_NO_KEYS)
                state = _KEY_OR_CLOSE
            deepest = max(deepest, len(stack))
        elif kind == "close" or kind == "oclose":
            n = token.count("]" if kind == "close" else "}")
            if state != _NEXT and state != (_VALUE_OR_CLOSE if kind == "close" else _KEY_OR_CLOSE):
                fail(f"unexpected {token[0]!r}", at)
            arrays = stack[-n:].count(None) if n <= len(stack) else -1
            if arrays != (n if kind == "close" else 0):
                fail(f"unbalanced {token[0]!r}", at)
            del stack[-n:]
            state = _NEXT if stack else _DONE
        elif kind == "punct":
            if token == ":":
                if state != _COLON:
                    fail("unexpected ':'", at)
                state = _VALUE
            else:  # ","
                if state != _NEXT:
                    fail("unexpected ','", at)
                state = _VALUE if stack[-1] is None else _KEY
        elif kind == "str" and (state == _KEY_OR_CLOSE or state == _KEY):
            key = json.loads(token) if "\\" in token else token[1:-1]
            if _SURROGATE.search(key):
                fail("a lone surrogate escape", at)
            keys = stack[-1]
            if keys is _NO_KEYS:
                stack[-1] = key
            elif keys.__class__ is str:
                if keys == key:
                    fail(f"duplicate key {_show(key)}", at)
                stack[-1] = {keys, key}
            else:
                if key in keys:
                    fail(f"duplicate key {_show(key)}", at)
                keys.add(key)
            state = _COLON
        else:  # a scalar value
            if state != _VALUE and state != _VALUE_OR_CLOSE:
                fail("unexpected value", at)
            if kind == "str" and "\\u" in token and _SURROGATE.search(json.loads(token)):
                fail("a lone surrogate escape", at)
            state = _NEXT if stack else _DONE
    if state != _DONE or text[pos:].strip(" \t\n\r"):
        fail("unexpected end of data" if pos >= len(text.rstrip(" \t\n\r")) else "invalid token", pos)
    return deepest


# ----------------------------------------------------------------------------------------- canonical text


def canonical_json(obj) -> str:
    """Sorted keys, no whitespace, numbers as written: equal objects give equal text on every engine."""
    if isinstance(obj, dict):
        items = sorted(obj.items())
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical_json(v) for k, v in items) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(canonical_json(v) for v in obj) + "]"
    if isinstance(obj, _BigNumber):
        return obj.text
    if isinstance(obj, Decimal):
        return str(obj)
    return json.dumps(obj, ensure_ascii=False)


def _show(value) -> str:
    """A value for a message: repr, cut to a readable length (a message must not carry a megabyte)."""
    text = repr(value) if not isinstance(value, (Decimal, int)) or isinstance(value, bool) else _num_text(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + f"… ({len(text)} characters)"


def _num_text(value) -> str:
    try:
        return str(value)
    except ValueError:  # int → str over 4300 digits
        return f"<{value.bit_length()}-bit integer>"


# ------------------------------------------------------------------------------------------- field checks


def _check_string(rule: FieldRule, value) -> str:
    if not isinstance(value, str):
        raise Rejection("wrong_type", f"{rule.name} must be a JSON string, got {_json_type(value)}")
    if "\x00" in value:
        raise Rejection("invalid_value", f"{rule.name} contains U+0000, which Postgres cannot store")
    if rule.min_length is not None and len(value) < rule.min_length:
        raise Rejection("invalid_value", f"{rule.name} is shorter than {rule.min_length} characters")
    if rule.max_length is not None and len(value) > rule.max_length:
        raise Rejection("invalid_value", f"{rule.name} is longer than {rule.max_length} characters")
    if rule.enum is not None and value not in rule.enum:
        raise Rejection("invalid_value", f"{rule.name} {_show(value)} is not one of {sorted(rule.enum)}")
    if rule.pattern is not None and rule.pattern.fullmatch(value) is None:
        raise Rejection("invalid_value", f"{rule.name} {_show(value)} does not match {rule.pattern.pattern!r}")
    return value


def _check_bounds(rule: FieldRule, value, shown=None) -> None:
    """`shown`: how the value is quoted in a message (default: _show(value), formatted only on failure)."""
    if rule.minimum is not None and value < rule.minimum:
        raise Rejection("invalid_value", f"{rule.name} {shown or _show(value)} is below the minimum {rule.minimum}")
    if rule.maximum is not None and value > rule.maximum:
        raise Rejection("invalid_value", f"{rule.name} {shown or _show(value)} is above the maximum {rule.maximum}")
    if rule.maximum_exclusive is not None and value >= rule.maximum_exclusive:
        raise Rejection("invalid_value", f"{rule.name} {shown or _show(value)} is not below {rule.maximum_exclusive}")


def _check_integer(rule: FieldRule, value) -> int:
    if value.__class__ is int:  # the common case first
        _check_bounds(rule, value)
        if not INT64[0] <= value <= INT64[1]:
            raise Rejection("invalid_value", f"{rule.name} {_show(value)} does not fit a 64-bit integer")
        return value
    if isinstance(value, _BigNumber) and value.integer:
        raise Rejection("invalid_value", f"{rule.name} has {len(value.text.lstrip('-'))} digits, out of range")
    if not isinstance(value, int) or isinstance(value, bool):
        raise Rejection("wrong_type", f"{rule.name} must be a JSON integer, got {_json_type(value)}")
    _check_bounds(rule, value)
    if not INT64[0] <= value <= INT64[1]:
        raise Rejection("invalid_value", f"{rule.name} {_show(value)} does not fit a 64-bit integer")
    return value


def _decimal_places(number: Decimal) -> int:
    """Decimal places of the exact value, from its digits and exponent (1e-10000000 has 10^7; 1.50 has 1)."""
    _, digits, exponent = number.as_tuple()
    if not isinstance(exponent, int) or exponent >= 0:
        return 0
    zeros = 0  # trailing zeros of the coefficient are not decimal places (1.50 has one)
    for digit in reversed(digits):
        if digit:
            break
        zeros += 1
    if zeros == len(digits):
        return 0  # zero
    return max(0, -exponent - zeros)


def _check_decimal(rule: FieldRule, value) -> Decimal:
    if isinstance(value, _BigNumber):
        raise Rejection("invalid_value", f"{rule.name} {_show(value.text)} is out of range")
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise Rejection("wrong_type", f"{rule.name} must be a JSON number, got {_json_type(value)}")
    number = Decimal(value)
    if not number.is_finite():
        raise Rejection("invalid_value", f"{rule.name} is not finite")
    _check_bounds(rule, number)
    scale = rule.scale if rule.scale is not None else 2
    if number.as_tuple().exponent < -scale and _decimal_places(number) > scale:  # type: ignore[operator]
        raise Rejection("invalid_value", f"{rule.name} {_show(number)} has more than {scale} decimal places")
    if number and number.adjusted() + 1 > rule.precision - scale:
        raise Rejection("invalid_value", f"{rule.name} {_show(number)} has more than {rule.precision - scale} "
                                         "digits before the decimal point")
    return number


def _check_boolean(rule: FieldRule, value) -> bool:
    if value is True or value is False:
        return value
    raise Rejection("wrong_type", f"{rule.name} must be true or false, got {_json_type(value)}")


def _check_timestamp(rule: FieldRule, value) -> datetime:
    if not isinstance(value, str):
        raise Rejection("wrong_type", f"{rule.name} must be a timestamp string, got {_json_type(value)}")
    if _TS.fullmatch(value) is None:
        raise Rejection("invalid_value",
                        f"{rule.name} {_show(value)} is not YYYY-MM-DD(T| )HH:MM:SS[.ffffff][Z|±HH:MM]")
    try:
        # The regex fixed the shape; fromisoformat (C) checks the calendar and the offset's range.
        ts = datetime.fromisoformat(value)
        if ts.tzinfo is not None:
            ts = (ts - ts.utcoffset()).replace(tzinfo=None)  # type: ignore[operator]
    except ValueError as exc:
        raise Rejection("invalid_value", f"{rule.name} {value!r} is not a real calendar time ({exc})") from None
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise Rejection("invalid_value", f"{rule.name} {value!r} is out of range in UTC") from None
    _check_bounds(rule, ts, value)
    return ts


def _check_date(rule: FieldRule, value) -> date:
    if not isinstance(value, str):
        raise Rejection("wrong_type", f"{rule.name} must be a date string, got {_json_type(value)}")
    if _DATE.fullmatch(value) is None:
        raise Rejection("invalid_value", f"{rule.name} {_show(value)} is not YYYY-MM-DD")
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise Rejection("invalid_value", f"{rule.name} {value!r} is not a real calendar date ({exc})") from None
    _check_bounds(rule, day, value)
    return day


def _check_object(rule: FieldRule, value) -> str:
    if isinstance(value, _Refused):
        raise Rejection("invalid_value", f"{rule.name}: {value.message}")
    if not isinstance(value, dict):
        raise Rejection("wrong_type", f"{rule.name} must be a JSON object, got {_json_type(value)}")
    try:
        try:  # fast path, same text as canonical_json when no decimals are inside
            text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        except TypeError:
            text = canonical_json(value)
    except RecursionError:
        raise _too_deep(_depth(value) + 1) from None
    # The record's depth is checked here for valid records (see from_json_line): the value sits one level under
    # the record, and each level costs at least two brackets of canonical text, so most objects skip the count.
    if len(text) >= 2 * MAX_DEPTH and text.count("[") + text.count("{") >= MAX_DEPTH:
        depth = _depth(value) + 1
        if depth > MAX_DEPTH:
            raise _too_deep(depth)
    # json.dumps writes U+0000 as \u0000; an escaped backslash before "u0000" is not one, hence the check
    if "\\" in text and "\\u0000" in text and any("\x00" in s for s in _strings(value)):
        raise Rejection("invalid_value", f"{rule.name} holds a string with U+0000, which Postgres cannot store")
    return text


_CHECKS = {
    "string": _check_string,
    "integer": _check_integer,
    "decimal": _check_decimal,
    "boolean": _check_boolean,
    "timestamp": _check_timestamp,
    "date": _check_date,
    "object": _check_object,
}


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, _BigNumber):
        return "integer" if value.integer else "number"
    if isinstance(value, Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


# A valid record, typed and keyed: (idempotency_key, each contract field in contract order, payload_sha256).
# A plain tuple: a million of them are built per large batch.
Row = tuple
KEY, PAYLOAD = 0, -1  # positions in a Row


class RowBuilder:
    """Typed field values → Row, compiled from the contract: canonical values (decimals at their scale, -0 as
    0), the idempotency key over the key fields' canonical texts in the listed order, the payload hash over
    the key and the other fields' texts (evident.land.keys)."""

    def __init__(self, contract: Contract):
        rules = list(contract.fields.values())
        self.names = [r.name for r in rules]
        # only the types with a normaliser (decimals) are touched; the others are canonical as checked
        self.normalise = [(i, _NORMALISE[r.type](r)) for i, r in enumerate(rules) if r.type in _NORMALISE]
        texts = [_TEXT[r.type] for r in rules]
        self.key_texts = [(i, texts[i]) for i in (self.names.index(k) for k in contract.key_fields)]
        self.rest_texts = [(i, texts[i]) for i, n in enumerate(self.names) if n not in contract.key_fields]

    def __call__(self, values: list) -> Row:
        """`values`: a fresh list (it is normalised in place)."""
        for i, norm in self.normalise:
            if values[i] is not None:
                values[i] = norm(values[i])
        key = idempotency_key([text(values[i]) for i, text in self.key_texts])
        rest = [None if values[i] is None else text(values[i]) for i, text in self.rest_texts]
        payload = payload_sha256([key, *rest])
        return (key, *values, payload)


def _decimal_normaliser(rule: FieldRule):
    quantum = Decimal(1).scaleb(-(rule.scale or 0))

    def normalise(value: Decimal) -> Decimal:
        value = value.quantize(quantum)
        return -value if value.is_signed() and not value else value  # -0 is 0: one canonical text per value

    return normalise


_NORMALISE = {"decimal": _decimal_normaliser}
# Canonical text of a typed value, per field type, as keys and payload hashes use it.
_TEXT: dict[str, Callable[[Any], str]] = {
    "string": str, "integer": str, "decimal": str, "object": str, "timestamp": utc_text, "date": date.isoformat,
    "boolean": lambda v: "true" if v else "false",
}


class Validator:
    """`build` turns a record's typed values (field name → value, None when absent) into what is landed: by
    default the app_events Row; `dict` gives the typed values of any contract."""

    def __init__(self, contract: Contract, build=None):
        self.contract = contract
        self._builder = RowBuilder(contract)
        self._positional = _by_position(self._builder)
        self.build = build or self._positional
        self.names = frozenset(contract.fields)
        self.field_names = list(contract.fields)
        self.required = [name for name, rule in contract.fields.items() if rule.required]
        self.plan = [(name, rule, _CHECKS[rule.type]) for name, rule in contract.fields.items()]
        # compiled once per contract: line → typed values in contract order (or the Row), or None (undecided)
        jsonl = contract.format == "jsonl"
        self.fast_values = compile_fast_path(contract, _CHECKS) if jsonl else None
        self.fast_row = compile_fast_path(contract, _CHECKS, self._builder) if jsonl else None

    def from_json_line(self, line: bytes) -> Row:
        """The fast path (evident.land.fast_path) decides the common case; whatever it leaves undecided, and
        every rejection, comes from the exact path. Both give the same Row for the same line."""
        if self.build is self._positional:
            if self.fast_row is not None and (row := self.fast_row(line)) is not None:
                return row
        elif self.fast_values is not None and (values := self.fast_values(line)) is not None:
            return self.build(dict(zip(self.field_names, values)))
        return self.exact_from_json_line(line)

    def exact_from_json_line(self, line: bytes) -> Row:
        """The exact path alone: the reference every fast decision must agree with."""
        obj = _parse(line, self.contract.max_record_bytes)
        try:
            return self.from_object(obj)
        except Rejection:
            # Strict JSON nested deeper than 64 is invalid_value before any later rule. A valid record can only
            # be deep inside an object field, which _check_object measures; a rejected one is measured here.
            # (Counting brackets on every line would cost more than all of this.)
            _refuse_deep(obj)
            raise

    def from_csv_record(self, record: CsvRecord) -> Row:
        max_bytes = self.contract.max_record_bytes
        if len(record.raw) > max_bytes:
            raise Rejection("oversized_record", f"record is {len(record.raw)} bytes, over the {max_bytes}-byte limit")
        if not record.utf8:
            try:
                record.raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise Rejection("invalid_utf8", f"not valid UTF-8 at byte {exc.start}") from None
        if record.problem is not None or record.values is None:
            raise Rejection("malformed_csv", record.problem or "not a CSV row")
        fields = self.contract.fields
        return self.from_object({name: _csv_cell(fields.get(name), cell) for name, cell in record.values.items()})

    def from_object(self, obj) -> Row:
        if not isinstance(obj, dict):
            raise Rejection("wrong_type", f"record must be a JSON object, got {_json_type(obj)}")
        if not obj.keys() <= self.names:
            unknown = next(k for k in obj if k not in self.names)
            raise Rejection("unknown_field",
                            f"unknown field {_show(unknown)} (not in contract {self.contract.contract_id})")
        for name in self.required:
            if obj.get(name) is None:
                raise Rejection("missing_field", f"required field {name} is {'null' if name in obj else 'absent'}")
        typed = {}
        for name, rule, check in self.plan:
            value = obj.get(name)
            typed[name] = None if value is None else check(rule, value)
        return self.build(typed)


def _csv_cell(rule: FieldRule | None, cell: str):
    """CSV cells are text: turn them into the JSON value the contract expects, or leave them as text (which
    the field's check then calls wrong_type)."""
    if rule is None or rule.type in ("string", "timestamp", "date"):
        return cell
    if rule.type == "integer" and _CSV_INT.fullmatch(cell):
        return _parse_int(cell.lstrip("+"))
    if rule.type == "decimal" and _CSV_NUMBER.fullmatch(cell):
        return _parse_number(cell)
    if rule.type == "boolean" and cell in ("true", "false"):
        return cell == "true"
    if rule.type == "object":
        try:
            return parse_json_line(cell.encode("utf-8", "surrogatepass"), 1 << 62)
        except Rejection as rej:
            return _Refused(rej.message) if rej.reason == "invalid_value" else cell
    return cell


def _by_position(builder: RowBuilder):
    names = builder.names
    return lambda typed: builder([typed[n] for n in names])
