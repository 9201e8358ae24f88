"""The fast path of JSONL validation: msgspec decodes a line into a Struct compiled once per contract, and a
function generated from the contract checks each field as the exact path would (the rules it names, inlined;
the exact path's own checks for the rarer spellings). It never rejects: it returns the record's typed values
(what the exact path would pass to the row builder) or the Row itself, or None, "undecided", and the exact path
(evident.land.validation) then decides the line — every rejection comes from there. Where unsure it leaves the
line undecided: deciding fewer lines costs time, never a different result.

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

import hashlib
import re
import textwrap
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import msgspec
from msgspec import UNSET, Raw, UnsetType

from evident.errors import FastPathUndecided
from evident.land.contracts import INT64, Contract, FieldRule
from evident.land.keys import UNIT_SEPARATOR, utc_text

__all__ = ["compile_fast_path"]

# A JSON number without an exponent whose integer literals stay well under the exact path's 40 digits.
_PLAIN_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]{0,30})(?:\.[0-9]{1,40})?")
_ABSENT = Raw(b"")  # a Raw field's default: a value as written is never empty
_MAX_OBJECT_DEPTH = 63  # the record is one level; strict JSON deeper than 64 is not the fast path's to judge
_INT_RANGE = (-(2**63), 2**64)  # integers inside objects msgspec and the stdlib read alike (kept as ints)
_MSGSPEC_TYPES: dict[str, Any] = {
    "string": str, "timestamp": str, "date": str, "integer": int, "boolean": bool,
}
_SCALAR, _DECIMAL, _OBJECT = range(3)
# The common spelling of a timestamp, a subset of the exact path's shape: UTC, "T", at most 6 decimals.
_UTC_Z = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z")

Checks = Mapping[str, Callable[[FieldRule, Any], object]]


def compile_fast_path(contract: Contract, checks: Checks, row: RowPieces | None = None
                      ) -> Callable[[bytes], Any] | None:
    """line → the typed field values in contract order, or None (undecided); with `row` (the row builder's
    normalisers), line → the Row itself (key, values, payload hash) or None. None instead of a function when
    msgspec cannot express the contract (then every line takes the exact path).

    The function is generated per contract (as dataclasses and namedtuple generate theirs): one straight run of
    the checks each field needs, no loop over rules, no call per check where an expression does — it is what a
    line costs, and a line of the common case costs a third of what the general code did. Its source is kept
    on the function (`__source__`) for reading and debugging."""
    rules = list(contract.fields.values())
    spec: list[tuple] = []
    for i, rule in enumerate(rules):
        kind = _MSGSPEC_TYPES.get(rule.type)
        spec.append((f"f{i}", kind | None | UnsetType, UNSET) if kind is not None else (f"f{i}", Raw, _ABSENT))
    try:
        struct = msgspec.defstruct(f"Fast_{contract.name}", spec, rename={f"f{i}": r.name for i, r in enumerate(rules)},
                                   forbid_unknown_fields=True)
        decode = msgspec.json.Decoder(struct).decode
    except Exception:  # noqa: BLE001 - no fast path for this contract, the exact one still holds
        return None
    namespace: dict[str, Any] = {
        "DECODE": decode, "UNSET": UNSET, "MAX_BYTES": contract.max_record_bytes, "PLAIN": _PLAIN_NUMBER.fullmatch,
        "DECIMAL": Decimal, "UTC_Z": _UTC_Z.fullmatch, "FROMISO": datetime.fromisoformat,
        "DECODE_ANY": msgspec.json.Decoder().decode, "PAIRS": _pairs_and_colons,
        # The exact path's text is json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False); msgspec
        # writes the same (keys sorted by code point, the same escapes; tests/land/test_fast_path.py checks every
        # character), five times faster.
        "DUMPS": msgspec.json.Encoder(order="sorted").encode, "SHA256": hashlib.sha256, "UTC_TEXT": utc_text,
        "INT64_MIN": INT64[0], "INT64_MAX": INT64[1],
    }
    body = [f"    v = s.f{i}\n" + _field(i, rule, checks, row is not None, namespace) for i, rule in enumerate(rules)]
    if row is None:
        result = f"    return [{', '.join(f't{i}' for i in range(len(rules)))}]\n"
    else:
        names = [r.name for r in rules]
        texts = {i: _TEXT[r.type].format(t=f"t{i}", x=f"x{i}") for i, r in enumerate(rules)}
        # keys.idempotency_key and keys.payload_sha256, as f-strings (U+001F and U+0002 written as escapes)
        separator = UNIT_SEPARATOR.encode("unicode_escape").decode()
        key = separator.join("{" + texts[names.index(k)] + "}" for k in contract.key_fields)
        rest = "".join(f"{separator}{{NUL if t{i} is None else STX + {texts[i]}}}"
                       for i, n in enumerate(names) if n not in contract.key_fields)
        namespace.update(NUL="\x00", STX="\x02")
        result = (f'    key = SHA256(f"{key}".encode()).hexdigest()\n'
                  f"    return (key, {', '.join(f't{i}' for i in range(len(rules)))}, "
                  f'SHA256(f"\\x02{{key}}{rest}".encode()).hexdigest())\n')
    # One function, so a line costs one call; any exception (a Rejection, a decode error, FastPathUndecided)
    # leaves the line to the exact path.
    inner = ("    if (len(line) > MAX_BYTES or line[:1] != b'{' or line[-1:] != b'}' or b'\\\\u003a' in line\n"
             "            or b'\\\\u003A' in line):\n"
             "        return None\n"
             "    s = DECODE(line)\n"
             "    colons = line.count(b':')  # becomes: pairs as written - pairs decoded\n"
             + "".join(body) + "    if colons:\n        return None\n" + result)
    source = ("def fast(line):\n    try:\n" + textwrap.indent(inner, "    ")
              + "    except Exception:  # noqa: BLE001\n        return None\n")
    if row is not None:
        for i, normalise in row.normalise:
            namespace[f"NORM{i}"] = normalise
    exec(compile(source, f"<fast path of {contract.contract_id}>", "exec"), namespace)  # noqa: S102 - our own text
    fast = namespace["fast"]
    fast.__source__ = source
    return fast


class RowPieces(Protocol):
    normalise: list[tuple[int, Callable[[Any], Any]]]


# Canonical text of a checked value per type, as keys and payload hashes use it (validation._TEXT): t is the
# value, x a timestamp's text computed where it was checked.
_TEXT = {"string": "{t}", "integer": "{t}", "decimal": "str({t})", "object": "{t}", "timestamp": "{x}",
         "date": "{t}.isoformat()", "boolean": "('true' if {t} else 'false')"}


def _field(i: int, rule: FieldRule, checks: Checks, row: bool, namespace: dict[str, Any]) -> str:
    """The code for field i: presence and colons, the checks its rule needs, its typed value t{i} (and, for a
    timestamp in a Row, its text x{i})."""
    namespace[f"R{i}"] = rule
    absent = "        return None\n" if rule.required else f"        t{i} = None\n"
    if rule.type in ("decimal", "object"):
        head = (f"    if not v:\n{absent}    else:\n        colons -= 1\n        v = bytes(v)\n"
                f"        if v == b'null':\n    {absent}        else:\n")
    else:
        colons = "            colons -= v.count(':')\n" if _MSGSPEC_TYPES[rule.type] is str else ""
        head = (f"    if v is UNSET:\n{absent}    else:\n        colons -= 1\n"
                f"        if v is None:\n    {absent}        else:\n{colons}")
    checks_of = {"string": _string, "integer": _integer, "boolean": _boolean, "timestamp": _timestamp,
                 "date": _checked, "decimal": _decimal, "object": _object}
    namespace[f"CHECK{i}"] = checks[rule.type]
    code = checks_of[rule.type](i, rule, row, namespace)
    return head + "".join(f"            {line}\n" for line in code)


def _bounds(i: int, rule: FieldRule, value: str, namespace: dict[str, Any]) -> list[str]:
    """The exact path's _check_bounds as conditions: out of bounds is undecided (the exact path rejects it)."""
    lines = []
    for name, op in (("minimum", "<"), ("maximum", ">"), ("maximum_exclusive", ">=")):
        bound = getattr(rule, name)
        if bound is not None:
            namespace[f"{name.upper()}{i}"] = bound
            lines.append(f"if {value} {op} {name.upper()}{i}:\n                return None")
    return lines


def _string(i: int, rule: FieldRule, row: bool, namespace: dict[str, Any]) -> list[str]:
    lines = ["if '\\x00' in v:\n                return None"]
    if rule.min_length is not None:
        lines.append(f"if len(v) < {int(rule.min_length)}:\n                return None")
    if rule.max_length is not None:
        lines.append(f"if len(v) > {int(rule.max_length)}:\n                return None")
    if rule.enum is not None:
        namespace[f"ENUM{i}"] = rule.enum
        lines.append(f"if v not in ENUM{i}:\n                return None")
    if rule.pattern is not None:
        namespace[f"PATTERN{i}"] = rule.pattern.fullmatch
        lines.append(f"if PATTERN{i}(v) is None:\n                return None")
    return [*lines, f"t{i} = v"]


def _integer(i: int, rule: FieldRule, row: bool, namespace: dict[str, Any]) -> list[str]:
    return [*_bounds(i, rule, "v", namespace),
            "if v < INT64_MIN or v > INT64_MAX:\n                return None", f"t{i} = v"]


def _boolean(i: int, rule: FieldRule, row: bool, namespace: dict[str, Any]) -> list[str]:
    return [f"t{i} = v"]


def _timestamp(i: int, rule: FieldRule, row: bool, namespace: dict[str, Any]) -> list[str]:
    """The exact timestamp check, shortened for "…Z" (the exact one converts an aware time to naive UTC; here it
    is read naive at once): the same datetime, and anything out of bounds is left undecided. The text of
    YYYY-MM-DDTHH:MM:SS.ffffffZ is the value as written."""
    bounds = "".join(f"\n                {line.replace(chr(10) + '    ', chr(10) + '        ')}"
                     for line in _bounds(i, rule, f"t{i}", namespace))
    text_z = f"\n                x{i} = v if len(v) == 27 else UTC_TEXT(t{i})" if row else ""
    text = f"\n                x{i} = UTC_TEXT(t{i})" if row else ""
    return [f"if UTC_Z(v) is not None:\n                t{i} = FROMISO(v[:-1]){bounds}{text_z}\n"
            f"            else:\n                t{i} = CHECK{i}(R{i}, v){text}"]


def _checked(i: int, rule: FieldRule, row: bool, namespace: dict[str, Any]) -> list[str]:
    return [f"t{i} = CHECK{i}(R{i}, v)"]


def _decimal(i: int, rule: FieldRule, row: bool, namespace: dict[str, Any]) -> list[str]:
    """The exact path's _check_decimal for a plain number (no exponent), read off its text: decimal places are
    the fraction's digits without trailing zeros, digits before the point those of the integer part (it has
    no leading zeros), the value is exact. An integer keeps the exact path's reading (int, so -0 is 0)."""
    scale = rule.scale if rule.scale is not None else 2
    lines = ["if PLAIN(v) is None:\n                return None",
             "whole, _, fraction = v.partition(b'.')",
             f"if len(fraction.rstrip(b'0')) > {int(scale)}:\n                return None",
             "whole = whole.lstrip(b'-')",
             f"if whole != b'0' and len(whole) > {int(rule.precision - scale)}:\n                return None",
             f"t{i} = DECIMAL(v.decode()) if fraction else DECIMAL(int(v))",
             *_bounds(i, rule, f"t{i}", namespace)]
    return lines + ([f"t{i} = NORM{i}(t{i})"] if row else [])


def _object(i: int, rule: FieldRule, row: bool, namespace: dict[str, Any]) -> list[str]:
    return ["o = DECODE_ANY(v)", "if o.__class__ is not dict:\n                return None",
            "colons -= PAIRS(o)", f"t{i} = DUMPS(o).decode()"]


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
