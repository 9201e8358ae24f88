"""The fast path of JSONL validation: msgspec decodes a line into a Struct compiled once per contract, and the
fields go through the exact path's own checks. It never rejects: it returns the record's typed values (what the
exact path would have passed to the row builder) or None, "undecided", and the exact path
(evident.land.validation) then decides the line — every rejection comes from there.

What msgspec does not judge the way DESIGN's strict JSON does, the fast path refuses to decide:
- duplicate keys (msgspec keeps the last, at every level): a key-value pair is the only place a ':' can stand
  outside a string, so a line's ':' count minus the ':'s inside its decoded strings (keys and values, all levels)
  is the number of pairs as written; a duplicate drops a pair from the decoded values (and perhaps strings, which
  only raises that difference), so the line is decided only when it equals the number of pairs decoded. An
  escape could spell a ':' that is not in the line's bytes, so a line with "\\u003a" or "\\u003A" is undecided;
- a decimal is taken as msgspec.Raw and decided only when its text is a plain number (no exponent, no string);
- an object is decoded again on its own (msgspec skips a Raw value without checking its UTF-8) and decided only
  when it holds no number but integers of 64 bits, no U+0000 and nests at most 63 levels; its text is the exact
  path's (sorted keys, no whitespace, the same escapes);
- a line over max_record_bytes, with whitespace around the value, or not an object, is undecided, as is
  anything that fails to decode or any value a check refuses.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from msgspec import UNSET, Raw, UnsetType

from evident.errors import FastPathUndecided
from evident.land.contracts import Contract, FieldRule

__all__ = ["compile_fast_path"]

# A JSON number without an exponent whose integer literals stay well under the exact path's 40 digits.
_PLAIN_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]{0,30})(?:\.[0-9]{1,40})?")
_ABSENT = Raw(b"")  # a Raw field's default: a value as written is never empty
_NULL = b"null"
_MAX_OBJECT_DEPTH = 63  # the record is one level; strict JSON deeper than 64 is not the fast path's to judge
_INT_RANGE = (-(2**63), 2**64)  # integers inside objects msgspec and the stdlib read alike (kept as ints)
_MSGSPEC_TYPES: dict[str, Any] = {
    "string": str, "timestamp": str, "date": str, "integer": int, "boolean": bool,
}
_SCALAR, _DECIMAL, _OBJECT = range(3)
# The common spelling of a timestamp, a subset of the exact path's shape: UTC, "T", at most 6 decimals.
_UTC_Z = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z")

Checks = Mapping[str, Callable[[FieldRule, Any], object]]


def compile_fast_path(contract: Contract, checks: Checks) -> Callable[[bytes], list | None] | None:
    """line → the typed field values in contract order, or None (undecided). None instead of a function when
    msgspec cannot express the contract (then every line takes the exact path)."""
    rules = list(contract.fields.values())
    spec: list[tuple] = []
    for i, rule in enumerate(rules):
        kind = _MSGSPEC_TYPES.get(rule.type)
        if kind is not None:
            spec.append((f"f{i}", kind | None | UnsetType, UNSET))
        else:  # decimal and object: the text as written
            spec.append((f"f{i}", Raw, _ABSENT))
    try:
        struct = msgspec.defstruct(f"Fast_{contract.name}", spec, rename={f"f{i}": r.name for i, r in enumerate(rules)},
                                   forbid_unknown_fields=True)
        decode = msgspec.json.Decoder(struct).decode
    except Exception:  # noqa: BLE001 - no fast path for this contract, the exact one still holds
        return None
    decode_any = msgspec.json.Decoder().decode
    astuple = msgspec.structs.astuple
    plan = [(_DECIMAL if r.type == "decimal" else _OBJECT if r.type == "object" else _SCALAR, r,
             _utc_timestamp(checks[r.type]) if r.type == "timestamp" else checks[r.type], r.required) for r in rules]
    max_bytes = contract.max_record_bytes
    plain_number = _PLAIN_NUMBER.fullmatch
    # The exact path's text is json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False); msgspec
    # writes the same (keys sorted by code point, the same escapes; tests/land/test_fast_path.py checks every
    # character), five times faster.
    dumps = msgspec.json.Encoder(order="sorted").encode

    def decide(line: bytes) -> list | None:
        if (len(line) > max_bytes or line[:1] != b"{" or line[-1:] != b"}" or b"\\u003a" in line
                or b"\\u003A" in line):
            return None
        try:
            values = astuple(decode(line))
            colons = line.count(b":")  # becomes: pairs as written − pairs decoded
            typed: list = []
            append = typed.append
            for (kind, rule, check, required), value in zip(plan, values):
                if kind == _SCALAR:
                    if value is UNSET:
                        if required:
                            return None
                        append(None)
                        continue
                    colons -= 1
                    if value is None:
                        if required:
                            return None
                        append(None)
                        continue
                    if value.__class__ is str:
                        colons -= value.count(":")
                    append(check(rule, value))
                    continue
                if not value:  # absent Raw
                    if required:
                        return None
                    append(None)
                    continue
                colons -= 1
                text = bytes(value)
                if text == _NULL:
                    if required:
                        return None
                    append(None)
                elif kind == _DECIMAL:
                    if plain_number(text) is None:
                        return None
                    number = Decimal(text.decode()) if b"." in text else int(text)
                    append(check(rule, number))
                else:
                    obj = decode_any(text)
                    if obj.__class__ is not dict:
                        return None
                    colons -= _pairs_and_colons(obj)
                    append(dumps(obj).decode())
            return typed if colons == 0 else None
        except Exception:  # noqa: BLE001 - a Rejection, a decode error, FastPathUndecided: the exact path decides
            return None

    return decide


def _utc_timestamp(exact: Callable[[FieldRule, Any], object]) -> Callable[[FieldRule, Any], object]:
    """The exact timestamp check, shortened for "…Z" (the exact one converts an aware time to naive UTC; here it
    is read naive at once): the same datetime, and anything out of bounds is left undecided."""
    utc_z = _UTC_Z.fullmatch
    fromisoformat = datetime.fromisoformat

    def check(rule: FieldRule, value: str) -> object:
        if utc_z(value) is None:
            return exact(rule, value)
        ts = fromisoformat(value[:-1])  # a ValueError (not a calendar time): undecided
        if ((rule.minimum is not None and ts < rule.minimum) or (rule.maximum is not None and ts > rule.maximum)
                or (rule.maximum_exclusive is not None and ts >= rule.maximum_exclusive)):
            raise FastPathUndecided
        return ts

    return check


def _pairs_and_colons(obj: dict) -> int:
    """Key-value pairs plus ':'s inside strings, over all levels of a decoded object; FastPathUndecided for what the
    fast path does not decide (floats, wide integers, U+0000, deep nesting)."""
    total = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    low, high = _INT_RANGE
    while stack:
        node, depth = stack.pop()
        if depth > _MAX_OBJECT_DEPTH:
            raise FastPathUndecided
        if node.__class__ is dict:
            total += len(node)
            for key in node:
                if ":" in key or "\x00" in key:
                    if "\x00" in key:
                        raise FastPathUndecided
                    total += key.count(":")
            children = node.values()
        else:
            children = node
        for child in children:
            cls = child.__class__
            if cls is str:
                if "\x00" in child:
                    raise FastPathUndecided
                total += child.count(":")
            elif cls is int:
                if not low <= child < high:
                    raise FastPathUndecided
            elif cls is dict or cls is list:
                stack.append((child, depth + 1))
            elif cls is not bool and child is not None:  # a float: the exact path reads it as a Decimal
                raise FastPathUndecided
    return total
