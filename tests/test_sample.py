"""`evident sample`'s generator: deterministic, clean when asked, and honest about what it planted.

The checks below use their own reading of the app_events contract (DESIGN.md), independent of the loader,
so a sample bug and a loader bug cannot cancel out.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from evident.sample import generate_sample

REASON_CODES = {
    "malformed_json",
    "invalid_utf8",
    "wrong_type",
    "unknown_field",
    "missing_field",
    "invalid_value",
    "oversized_record",
    "conflicting_duplicate",
}
FIELDS = {"event_id", "user_id", "event_ts", "event_type", "value", "app_version", "properties"}
REQUIRED = ("event_id", "user_id", "event_ts", "event_type")
EVENT_TYPES = {"login", "view_page", "add_to_cart", "purchase", "signup", "logout"}
TS_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:\d{2})?")
BOM = b"\xef\xbb\xbf"
SMALL = {"events": 3000, "days": 5}


# ------------------------------------------------------------------------ an independent contract check


class Invalid(Exception):
    def __init__(self, reason_code: str):
        super().__init__(reason_code)
        self.reason_code = reason_code


def _no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate key in {keys}")
    return dict(pairs)


def _no_constants(token):
    raise ValueError(f"{token} is not strict JSON")


def parse_ts(text: str) -> datetime:
    """event_ts → aware UTC datetime; raises Invalid('invalid_value')."""
    m = TS_RE.fullmatch(text)
    if not m:
        raise Invalid("invalid_value")
    y, mo, d, h, mi, s, frac, zone = m.groups()
    try:
        local = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), int((frac or "").ljust(6, "0")))
    except ValueError:
        raise Invalid("invalid_value") from None
    offset = timedelta(0)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    utc = (local - offset).replace(tzinfo=UTC)
    if not datetime(2000, 1, 1, tzinfo=UTC) <= utc < datetime(2100, 1, 1, tzinfo=UTC):
        raise Invalid("invalid_value")
    return utc


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def check_record(raw: bytes) -> dict:
    """The parsed record of a valid line; raises Invalid(reason_code) otherwise."""
    if len(raw) > 1 << 20:
        raise Invalid("oversized_record")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("invalid_utf8") from None
    try:
        obj = json.loads(
            text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants, parse_float=Decimal
        )
    except ValueError:
        raise Invalid("malformed_json") from None
    if not isinstance(obj, dict):
        raise Invalid("wrong_type")
    if set(obj) - FIELDS:
        raise Invalid("unknown_field")
    if any(obj.get(k) is None for k in REQUIRED):
        raise Invalid("missing_field")
    is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    types_ok = (
        isinstance(obj["event_id"], str)
        and is_int(obj["user_id"])
        and isinstance(obj["event_ts"], str)
        and isinstance(obj["event_type"], str)
        and (obj.get("value") is None or is_int(obj["value"]) or isinstance(obj["value"], Decimal))
        and (obj.get("app_version") is None or isinstance(obj["app_version"], str))
        and (obj.get("properties") is None or isinstance(obj["properties"], dict))
    )
    if not types_ok:
        raise Invalid("wrong_type")
    value = obj.get("value")
    if value is not None:
        v = Decimal(value)
        if not v.is_finite() or not 0 <= v < 10**16 or v.normalize().as_tuple().exponent < -2:
            raise Invalid("invalid_value")
    if (
        not 1 <= len(obj["event_id"]) <= 128
        or not 1 <= obj["user_id"] <= 2**63 - 1
        or obj["event_type"] not in EVENT_TYPES
        or len(obj.get("app_version") or "") > 64
        or any("\x00" in s for s in _strings(obj))
    ):
        raise Invalid("invalid_value")
    parse_ts(obj["event_ts"])
    return obj


def reason_of(raw: bytes) -> str | None:
    try:
        check_record(raw)
    except Invalid as exc:
        return exc.reason_code
    return None


def key_of(record: dict) -> tuple:
    ts = parse_ts(record["event_ts"]).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (record["user_id"], ts, record["event_type"], record["event_id"])


# -------------------------------------------------------------------------------------------- helpers


def physical_lines(path: Path) -> list[bytes]:
    """Lines as the loader numbers them: BOM dropped, CRLF accepted, blank lines kept (they count)."""
    data = path.read_bytes()
    if data.startswith(BOM):
        data = data[len(BOM) :]
    lines = data.split(b"\n")
    assert lines[-1] == b"", f"{path} does not end with a newline"
    return [line[:-1] if line.endswith(b"\r") else line for line in lines[:-1]]


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def file_date(rel: str) -> date:
    return date.fromisoformat(rel.split("/")[1])


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    return out, generate_sample(out, seed=7, **SMALL)


@pytest.fixture(scope="module")
def defective(tmp_path_factory):
    out = tmp_path_factory.mktemp("defective")
    return out, generate_sample(out, seed=11, defect_rate=0.02, **SMALL)


# ---------------------------------------------------------------------------------------------- tests


def test_same_arguments_give_byte_identical_trees(tmp_path):
    a = generate_sample(tmp_path / "a", seed=3, defect_rate=0.02, **SMALL)
    b = generate_sample(tmp_path / "b", seed=3, defect_rate=0.02, **SMALL)
    digest_a = tree_digest(tmp_path / "a")
    assert digest_a == tree_digest(tmp_path / "b")
    assert "_planted_defects.json" in digest_a
    assert a.defects == b.defects
    assert (a.events_written, a.duplicate_deliveries, a.late_events) == (
        b.events_written,
        b.duplicate_deliveries,
        b.late_events,
    )


def test_different_seed_gives_different_files(tmp_path):
    generate_sample(tmp_path / "a", seed=1, **SMALL)
    generate_sample(tmp_path / "b", seed=2, **SMALL)
    digest_a, digest_b = tree_digest(tmp_path / "a"), tree_digest(tmp_path / "b")
    assert digest_a.keys() == digest_b.keys()
    assert all(digest_a[k] != digest_b[k] for k in digest_a)


def test_layout_is_one_folder_per_delivery_date_in_lexicographic_order(clean):
    out, result = clean
    rels = [p.relative_to(out).as_posix() for p in result.files]
    assert rels == sorted(rels)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jsonl")) == rels
    assert [file_date(r) for r in rels] == [date(2026, 1, 1) + timedelta(days=d) for d in range(5)]
    assert all(re.fullmatch(r"app_events/\d{4}-\d{2}-\d{2}/part-\d{3}\.jsonl", r) for r in rels)
    assert not (out / "_planted_defects.json").exists()


def test_clean_sample_is_valid_and_duplicates_are_exact_copies(clean):
    out, result = clean
    first_delivery: dict[tuple, tuple[bytes, date]] = {}
    late, copies = [], []
    same_file_copies = later_file_copies = 0
    for path in result.files:
        data = path.read_bytes()
        assert not data.startswith(BOM) and b"\r" not in data  # quirks are planted only with defects
        rel = path.relative_to(out).as_posix()
        seen_here = set()
        for n, raw in enumerate(physical_lines(path), 1):
            assert raw, f"{rel}:{n} blank line in a clean sample"
            assert reason_of(raw) is None, f"{rel}:{n} {reason_of(raw)}: {raw[:200]!r}"
            record = check_record(raw)
            key = key_of(record)
            if key in first_delivery:
                assert first_delivery[key][0] == raw, f"{rel}:{n} conflicts with an earlier delivery"
                copies.append(key)
                same_file_copies += key in seen_here
                later_file_copies += key not in seen_here
            else:
                first_delivery[key] = (raw, file_date(rel))
                event_date = parse_ts(record["event_ts"]).date()
                assert event_date <= file_date(rel)
                if event_date < file_date(rel):
                    late.append((file_date(rel) - event_date).days)
            seen_here.add(key)

    assert len(first_delivery) == result.events_written == SMALL["events"]
    assert len(copies) == result.duplicate_deliveries > 0
    assert same_file_copies > 0 and later_file_copies > 0
    assert len(late) == result.late_events > 0
    assert 1 in late and max(late) >= 2  # one day late and several days late


def test_clean_sample_has_the_realistic_shapes(clean):
    out, _ = clean
    records = [check_record(raw) for p in sorted(out.rglob("*.jsonl")) for raw in physical_lines(p)]
    by_user: dict[int, list[datetime]] = defaultdict(list)
    for r in records:
        by_user[r["user_id"]].append(parse_ts(r["event_ts"]))
    gaps = Counter()
    for times in by_user.values():
        times = sorted(set(times))
        gaps.update((b - a).total_seconds() for a, b in zip(times, times[1:]))
    assert gaps[1800.0] > 0 and gaps[1801.0] > 0  # both sides of the session boundary
    assert any(g > 1800 for g in gaps) and sum(n for g, n in gaps.items() if g < 1800) > len(records) / 2

    stamps = [r["event_ts"] for r in records]
    canonical = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
    assert sum(bool(canonical.fullmatch(s)) for s in stamps) > len(stamps) * 0.6
    for form in (r".{10} .*", r".{19}Z", r".{19}\.\d{3}Z", r".*\+02:00", r".*-05:30"):
        assert any(re.fullmatch(form, s) for s in stamps), form

    assert any(r["user_id"] > 2**62 for r in records)  # ids near the BIGINT ceiling
    assert {r["event_type"] for r in records} == EVENT_TYPES
    purchases = [r for r in records if r["event_type"] == "purchase"]
    assert any(isinstance(r.get("value"), Decimal) for r in purchases)
    assert any("value" in r and r["value"] is None for r in records)
    assert any("value" not in r for r in records)
    assert any("app_version" in r for r in records) and any("properties" in r for r in records)
    assert len({r["event_id"] for r in records}) == SMALL["events"]


def test_planted_defects_are_exactly_where_the_list_says(defective):
    out, result = defective
    planted = {(d.file, d.line): d for d in result.defects}
    assert len(planted) == len(result.defects)
    assert {d.reason_code for d in result.defects} == REASON_CODES
    assert sum(d.reason_code == "oversized_record" for d in result.defects) == 1
    assert 0.015 * SMALL["events"] <= len(result.defects) <= 0.025 * SMALL["events"]
    listed = json.loads((out / "_planted_defects.json").read_text("utf-8"))
    assert listed == [asdict(d) for d in result.defects]

    first_delivery: dict[tuple, tuple[bytes, str]] = {}
    blank = bom = crlf = 0
    for path in result.files:
        rel = path.relative_to(out).as_posix()
        data = path.read_bytes()
        bom += data.startswith(BOM)
        crlf += b"\r\n" in data
        lines = physical_lines(path)
        records = 0
        for n, raw in enumerate(lines, 1):
            if not raw:
                blank += 1
                assert (rel, n) not in planted
                continue
            records += 1
            defect = planted.get((rel, n))
            reason = reason_of(raw)
            if defect is None or defect.reason_code == "conflicting_duplicate":
                assert reason is None, f"{rel}:{n} unplanted {reason}: {raw[:200]!r}"
                key = key_of(check_record(raw))
                if defect is None:
                    assert key not in first_delivery or first_delivery[key][0] == raw, f"{rel}:{n} conflicts"
                else:  # same key as a valid line of an EARLIER file, different payload
                    assert key in first_delivery, f"{rel}:{n} conflicting duplicate without an original"
                    original, original_file = first_delivery[key]
                    assert original != raw and original_file < rel
                first_delivery.setdefault(key, (raw, rel))
            else:
                assert reason == defect.reason_code, f"{rel}:{n} expected {defect.reason_code}, got {reason}"
        share = sum(f == rel for f, _ in planted) / records
        assert share < 0.05, f"{rel}: {share:.1%} planted would reject the batch"
    assert blank > 0 and bom == 1 and crlf >= 1
    assert result.late_events > 0 and result.duplicate_deliveries > 0


def test_each_defect_kind_really_is_that_defect(defective):
    out, result = defective
    lines = {p.relative_to(out).as_posix(): physical_lines(p) for p in result.files}
    raw = {d.description: lines[d.file][d.line - 1] for d in result.defects}
    # Spot-check the spellings the brief asks for, not only the reason codes.
    assert any(b"NaN" in r for r in raw.values()) and any(b"Infinity" in r for r in raw.values())
    assert any(b"\xff\xfe" in r for r in raw.values())
    assert any(r.startswith(b"[") for r in raw.values())
    assert any(b'"colour"' in r for r in raw.values())
    assert any(len(r) > 1 << 20 for r in raw.values())
    descriptions = " | ".join(raw)
    for fragment in ("duplicate key", "TAB", '"Purchase"', "user_id 0", "user_id 2^63", "value -1", "1.234",
                     "2026-02-30", "1999", "129", 'event_id ""', "U+0000", "65 characters",
                     "event_type absent", "user_id is null", 'user_id is a string', "value is true"):
        assert fragment in descriptions, fragment


def test_several_parts_per_day_keep_delivery_order(tmp_path):
    result = generate_sample(tmp_path, events=600, days=2, seed=5, lines_per_part=100)
    rels = [p.relative_to(tmp_path).as_posix() for p in result.files]
    assert rels == sorted(rels) and len(rels) > 4
    assert "app_events/2026-01-01/part-002.jsonl" in rels
    assert sum(len(physical_lines(p)) for p in result.files) == 600 + result.duplicate_deliveries


def test_small_and_odd_arguments(tmp_path):
    result = generate_sample(tmp_path / "one", events=1, days=1)
    assert result.events_written == 1 and len(result.files) == 1
    result = generate_sample(tmp_path / "tiny", events=50, days=3, defect_rate=1.0)
    assert result.defects and result.events_written < 50
    for bad in ({"events": 0}, {"days": 0}, {"defect_rate": 1.5}, {"start_date": date(1999, 12, 31)}):
        with pytest.raises(ValueError):
            generate_sample(tmp_path / "bad", **bad)
