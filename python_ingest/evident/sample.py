"""Deterministic sample files of app events (what `evident sample` writes).

Layout: one folder per delivery date, files named so that lexicographic path order is delivery order:

    <out_dir>/app_events/2026-01-01/part-000.jsonl
    <out_dir>/app_events/2026-01-02/part-000.jsonl
    ...
    <out_dir>/_planted_defects.json          (only when defect_rate > 0; not .jsonl, so never loaded)

A day's file holds the events of that UTC day, plus ~2 % late events (an earlier event date, 1 or several
days late) and ~1 % duplicate deliveries (exact byte copies of an already delivered line, in the same file
or a later one).  With defect_rate == 0 every record is valid and duplicates never conflict.  With
defect_rate R > 0 about R × events lines are replaced by planted defects, cycling through every reason code
of the `app_events` contract; each one is recorded with its file, physical line number and reason code.

Determinism: all randomness comes from one random.Random(seed), consumed in list order; no wall clock,
no set iteration, no hash-dependent ordering.  Same arguments → byte-identical files.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import accumulate, cycle
from pathlib import Path

from evident.samples.common import check_sizes, write_defect_list
from evident.samples.timestamps import CANONICAL, DAY_US, MICROS, TsStyle

__all__ = ["PlantedDefect", "SampleResult", "generate_sample", "REASON_CODES", "EVENT_TYPES"]

MAX_USER_ID = 2**63 - 1
MAX_LINE_BYTES = 1 << 20  # the contract's oversized_record limit
DEFAULT_LINES_PER_PART = 50_000

EVENT_TYPES = ("login", "view_page", "add_to_cart", "purchase", "signup", "logout")
REASON_CODES = (
    "malformed_json",
    "invalid_utf8",
    "wrong_type",
    "unknown_field",
    "missing_field",
    "invalid_value",
    "oversized_record",
    "conflicting_duplicate",
)

LATE_SHARE = 0.02
DUPLICATE_SHARE = 0.01
EVENTS_PER_USER = 20
# A few users with ids at the very top of the BIGINT range: they catch float64 / JSON-number precision loss.
LARGE_USER_IDS = (MAX_USER_ID, MAX_USER_ID - 1, MAX_USER_ID - 987_654_321)

BOM = b"\xef\xbb\xbf"
_ABSENT = object()  # a field that is not written at all (unlike "value": null)


# ----------------------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class PlantedDefect:
    file: str  # path relative to out_dir, posix
    line: int  # 1-based physical line number (blank lines count)
    reason_code: str
    description: str


@dataclass
class SampleResult:
    files: list[Path]
    defects: list[PlantedDefect] = field(default_factory=list)
    events_written: int = 0  # distinct valid events delivered
    duplicate_deliveries: int = 0  # extra exact copies of already delivered lines
    late_events: int = 0  # events first delivered in a file of a later date than their event date


def generate_sample(
    out_dir: Path,
    events: int = 10_000,
    days: int = 7,
    seed: int = 42,
    defect_rate: float = 0.0,
    start_date: date = date(2026, 1, 1),
    *,
    lines_per_part: int = DEFAULT_LINES_PER_PART,
) -> SampleResult:
    """Write a deterministic app-events sample under out_dir and say what was planted in it."""
    _check_arguments(events, days, defect_rate, start_date, lines_per_part)
    out_dir = Path(out_dir)
    rng = random.Random(seed)
    window_start = (start_date.toordinal() - date(1970, 1, 1).toordinal()) * DAY_US

    evts = _simulate_events(rng, events, days, window_start)
    _assign_ids_and_lines(rng, evts, seed, window_start)
    by_day, delivery_day = _plan_deliveries(rng, evts, days)
    files = _split_into_files(by_day, start_date, lines_per_part)
    replaced = _plant_defects(rng, files, evts, defect_rate) if defect_rate > 0 else [False] * len(evts)
    paths, defects = _write_files(rng, out_dir, files, evts, plant_quirks=defect_rate > 0)

    write_defect_list(out_dir / "_planted_defects.json", defects, planted=defect_rate > 0)

    return SampleResult(
        files=paths,
        defects=defects,
        events_written=sum(1 for r in replaced if not r),
        duplicate_deliveries=sum(1 for slots in by_day for s in slots if s.is_copy),
        late_events=sum(1 for i, e in enumerate(evts) if delivery_day[i] > e.day and not replaced[i]),
    )


def _check_arguments(events: int, days: int, defect_rate: float, start_date: date, lines_per_part: int) -> None:
    check_sizes("events", events, days, defect_rate, "lines_per_part", lines_per_part)
    # The contract only accepts event times in [2000-01-01, 2100-01-01).
    if start_date < date(2000, 1, 1) or start_date + timedelta(days=days) > date(2100, 1, 1):
        raise ValueError(f"{days} days from {start_date} fall outside [2000-01-01, 2100-01-01)")


# ------------------------------------------------------------------------------------ event timestamps


_CANONICAL = CANONICAL
_TS_STYLES = (  # (weight, style); mostly canonical, some of every other allowed form
    (80, _CANONICAL),
    (4, TsStyle(" ", 6, "", 0)),
    (4, TsStyle("T", 0, "Z", 0)),
    (2, TsStyle(" ", 0, "", 0)),
    (4, TsStyle("T", 3, "Z", 0)),
    (3, TsStyle("T", 6, "+02:00", 120)),
    (2, TsStyle("T", 6, "-05:30", -330)),
    (1, TsStyle("T", 3, "+00:00", 0)),
)
_PRECISE_STYLES = tuple((w, s) for w, s in _TS_STYLES if s.fraction_digits == 6)
_STYLE_TABLES = {  # keep_precision → (styles, cumulative weights), built once: this runs per event
    keep: ([s for _, s in table], list(accumulate(w for w, _ in table)))
    for keep, table in ((False, _TS_STYLES), (True, _PRECISE_STYLES))
}


def _pick_style(rng: random.Random, keep_precision: bool) -> TsStyle:
    styles, cum_weights = _STYLE_TABLES[keep_precision]
    return rng.choices(styles, cum_weights=cum_weights)[0]


# ---------------------------------------------------------------------------------- event simulation


@dataclass
class _User:
    user_id: int
    cursor_us: int  # earliest start of this user's next session
    app_version: str | None
    joins_day: int  # first day (index) the user can be active
    is_new: bool = True  # no event yet: the first one is usually a signup
    exact_next: bool = False  # next session starts exactly 1801 s after the last event (keep precision)


@dataclass
class _Event:
    user_id: int
    ts_us: int
    ts_text: str
    event_type: str
    value: object  # _ABSENT, None, int or float
    app_version: str | None
    properties: dict | None
    shuffled_keys: bool
    event_id: str = ""
    day: int = 0  # index of the event's UTC date within the window
    record: dict = field(default_factory=dict)
    line: bytes = b""


def _simulate_events(rng: random.Random, events: int, days: int, window_start: int) -> list[_Event]:
    """Sessions of randomly picked users, day by day, until each day has its even share of events."""
    window_end = window_start + days * DAY_US
    n_users = max(1, events // EVENTS_PER_USER)
    # Half the users were already active before the window (no signup); the others join on a random day.
    users = [_new_user(rng, uid, joins_day=0, is_new=False) for uid in LARGE_USER_IDS]
    for uid in range(1, n_users + 1):
        is_new = rng.random() < 0.5
        users.append(_new_user(rng, uid, joins_day=rng.randrange(days) if is_new else 0, is_new=is_new))
    out: list[_Event] = []
    for d in range(days):
        day_start, day_end = window_start + d * DAY_US, window_start + (d + 1) * DAY_US
        quota = events * (d + 1) // days - events * d // days
        pool = [u for u in users if u.joins_day <= d and u.cursor_us < day_end]
        produced = 0
        while produced < quota:
            if not pool:  # everyone is busy until a later day: a new user shows up
                users.append(_new_user(rng, len(users) - len(LARGE_USER_IDS) + 1, joins_day=d, is_new=True))
                pool.append(users[-1])
            i = rng.randrange(len(pool))
            user = pool[i]
            if user.cursor_us < day_start:  # idle since an earlier day: comes back at a random time today
                user.cursor_us = day_start + rng.randrange(DAY_US)
                user.exact_next = False
            produced += _simulate_session(rng, user, window_end, out, quota - produced)
            if user.cursor_us >= day_end:
                pool[i] = pool[-1]
                pool.pop()
    return out


def _new_user(rng: random.Random, user_id: int, joins_day: int, is_new: bool) -> _User:
    version = f"{rng.randint(2, 4)}.{rng.randint(0, 12)}.{rng.randint(0, 9)}" if rng.random() < 0.8 else None
    return _User(user_id, cursor_us=0, app_version=version, joins_day=joins_day, is_new=is_new)


def _simulate_session(rng: random.Random, user: _User, window_end: int, out: list[_Event], budget: int) -> int:
    """Append one session of at most `budget` events (at least one); returns how many."""
    t = user.cursor_us
    exact = user.exact_next
    produced = 0
    for k, event_type in enumerate(_session_types(rng, user.is_new)[:budget]):
        if k:
            gap, exact = _gap_within_session(rng)
            t += gap
        # An exact 1800 s / 1801 s gap must survive formatting, so that event keeps all six digits.
        style = _pick_style(rng, keep_precision=exact)
        t = style.truncate(t)
        if t >= window_end:
            user.cursor_us = window_end
            return produced
        out.append(_make_event(rng, user, t, style, event_type))
        produced += 1
        user.is_new = False
    gap, user.exact_next = _gap_between_sessions(rng)
    user.cursor_us = t + gap
    return produced


def _session_types(rng: random.Random, first_ever: bool) -> list[str]:
    types = ["signup" if first_ever and rng.random() < 0.7 else "login"]
    in_cart = False
    for _ in range(min(int(rng.expovariate(0.25)), 14)):
        r = rng.random()
        if in_cart and r < 0.3:
            types.append("purchase")
            in_cart = False
        elif r < 0.75:
            types.append("view_page")
        else:
            types.append("add_to_cart")
            in_cart = True
    if len(types) > 1 and rng.random() < 0.4:
        types.append("logout")
    return types


def _gap_within_session(rng: random.Random) -> tuple[int, bool]:
    """Microseconds to the next event of the session; True when the gap is the exact 1800 s boundary."""
    r = rng.random()
    if r < 0.01:
        return 1800 * MICROS, True  # still the same session: the rule is "more than 30 minutes"
    if r < 0.70:
        return rng.randrange(2 * MICROS, 120 * MICROS), False
    if r < 0.95:
        return rng.randrange(120 * MICROS, 900 * MICROS), False
    return rng.randrange(900 * MICROS, 1740 * MICROS), False


def _gap_between_sessions(rng: random.Random) -> tuple[int, bool]:
    r = rng.random()
    if r < 0.05:
        return 1801 * MICROS, True  # the smallest whole-second gap that starts a new session
    if r < 0.30:
        return rng.randrange(1860 * MICROS, 3 * 3600 * MICROS), False
    return rng.randrange(3 * 3600 * MICROS, 36 * 3600 * MICROS), False


def _make_event(rng: random.Random, user: _User, ts_us: int, style: TsStyle, event_type: str) -> _Event:
    return _Event(
        user_id=user.user_id,
        ts_us=ts_us,
        ts_text=style.format(ts_us),
        event_type=event_type,
        value=_value_for(rng, event_type),
        app_version=user.app_version if user.app_version and rng.random() < 0.85 else None,
        properties=_properties_for(rng, event_type),
        shuffled_keys=rng.random() < 0.03,  # key order carries no meaning in JSON
    )


def _value_for(rng: random.Random, event_type: str) -> object:
    if event_type != "purchase":
        return None if rng.random() < 0.15 else _ABSENT
    r = rng.random()
    if r < 0.01:
        return None  # a purchase with an unknown amount
    if r < 0.02:
        return 0  # a free order
    if r < 0.10:
        return rng.randint(1, 300)  # a whole amount, written as a JSON integer
    return rng.randint(99, 49_999) / 100  # cents: repr gives at most 2 decimals, e.g. 19.99


_PAGES = ("/home", "/search", "/product/42", "/cart", "/checkout", "/über-uns", "/search?q=café", "/商品/7")
_REFERRERS = ("organic", "ads", "friend", "newsletter")
_DEVICES = (("ios", "iPhone 15"), ("android", "Pixel 8"), ("web", "Firefox"))


def _properties_for(rng: random.Random, event_type: str) -> dict | None:
    if rng.random() >= 0.4:
        return None
    if event_type == "view_page":
        props: dict = {"page": rng.choice(_PAGES)}
    elif event_type == "add_to_cart":
        props = {"sku": f"SKU-{rng.randint(1, 500):04d}", "qty": rng.randint(1, 3)}
    elif event_type == "purchase":
        props = {"currency": "EUR", "items": rng.randint(1, 5)}
    elif event_type == "signup":
        props = {"referrer": rng.choice(_REFERRERS)}
    elif event_type == "login":
        props = {"method": rng.choice(("password", "sso", "magic_link"))}
    else:
        props = {}
    if rng.random() < 0.2:
        os_name, model = rng.choice(_DEVICES)
        props["device"] = {"os": os_name, "model": model}
    return props


def _assign_ids_and_lines(rng: random.Random, evts: list[_Event], seed: int, window_start: int) -> None:
    """Number events in time order (so ids grow with time) and render each one's line once."""
    evts.sort(key=lambda e: (e.ts_us, e.user_id))  # stable: ties keep simulation order
    for n, e in enumerate(evts, 1):
        e.event_id = f"evt-{seed}-{n}"
        e.day = (e.ts_us - window_start) // DAY_US
        e.record = _record(rng, e)
        e.line = _dumps(e.record)


def _record(rng: random.Random, e: _Event) -> dict:
    fields: list[tuple[str, object]] = [
        ("event_id", e.event_id),
        ("user_id", e.user_id),
        ("event_ts", e.ts_text),
        ("event_type", e.event_type),
    ]
    if e.value is not _ABSENT:
        fields.append(("value", e.value))
    if e.app_version is not None:
        fields.append(("app_version", e.app_version))
    if e.properties is not None:
        fields.append(("properties", e.properties))
    if e.shuffled_keys:
        rng.shuffle(fields)
    return dict(fields)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)  # compact, real UTF-8


def _dumps(obj: object) -> bytes:
    return _ENCODER.encode(obj).encode("utf-8")


# ------------------------------------------------------------------------------------------ deliveries


@dataclass
class _Slot:
    """One delivered line: an event's first delivery or an exact copy of it, or a defect in its place."""

    event: int  # index into the events list
    is_copy: bool
    order: float  # position within the delivery day
    seq: int  # tie-breaker, so a same-day copy sorts after its original
    defect: _Planted | None = None


@dataclass(frozen=True)
class _Planted:
    reason_code: str
    description: str
    line: bytes


def _plan_deliveries(rng: random.Random, evts: list[_Event], days: int) -> tuple[list[list[_Slot]], list[int]]:
    """Which delivery day (file date) carries each event and each duplicate copy, in file order."""
    last = days - 1
    n = len(evts)
    delivery_day = [e.day for e in evts]
    can_be_late = [i for i, e in enumerate(evts) if e.day < last]
    for i in rng.sample(can_be_late, min(len(can_be_late), round(LATE_SHARE * n))):
        delivery_day[i] += _lateness_days(rng, last - evts[i].day)

    on_time = [0] * days
    for i, e in enumerate(evts):
        on_time[e.day] += delivery_day[i] == e.day

    by_day: list[list[_Slot]] = [[] for _ in range(days)]
    originals: list[_Slot] = []
    rank = [0] * days
    for i, e in enumerate(evts):
        d = delivery_day[i]
        if d == e.day:  # on-time events arrive in time order
            order: float = rank[d]
            rank[d] += 1
        else:  # late events are mixed in anywhere
            order = rng.uniform(0, on_time[d])
        slot = _Slot(i, False, order, i)
        by_day[d].append(slot)
        originals.append(slot)

    seq = n
    for i in rng.sample(range(n), round(DUPLICATE_SHARE * n)):
        d = delivery_day[i]
        if d == last or rng.random() < 0.5:  # again in the same file, after the original
            order = rng.uniform(originals[i].order, max(originals[i].order, on_time[d]))
        else:  # redelivered in one of the next few files
            d = rng.randint(d + 1, min(d + 3, last))
            order = rng.uniform(0, on_time[d])
        by_day[d].append(_Slot(i, True, order, seq))
        seq += 1

    for slots in by_day:
        slots.sort(key=lambda s: (s.order, s.seq))
    return by_day, delivery_day


def _lateness_days(rng: random.Random, max_days: int) -> int:
    if max_days == 1 or rng.random() < 0.65:
        return 1
    return rng.randint(2, min(6, max_days))


def _split_into_files(
    by_day: list[list[_Slot]], start_date: date, lines_per_part: int
) -> list[tuple[str, list[_Slot]]]:
    """(relative path, slots) per file; zero-padded names keep lexicographic order = delivery order."""
    files = []
    for d, slots in enumerate(by_day):
        day = date.fromordinal(start_date.toordinal() + d).isoformat()
        for part, start in enumerate(range(0, len(slots), lines_per_part)):
            files.append((f"app_events/{day}/part-{part:03d}.jsonl", slots[start : start + lines_per_part]))
    return files


# ------------------------------------------------------------------------------------------- defects


@dataclass(frozen=True)
class _Variant:
    reason_code: str
    description: str
    build: Callable[[dict], bytes] | None  # from a copy of the replaced event's record; None: conflict


def _set(key: str, value: object) -> Callable[[dict], bytes]:
    def build(record: dict) -> bytes:
        record[key] = value
        return _dumps(record)

    return build


def _drop(key: str) -> Callable[[dict], bytes]:
    def build(record: dict) -> bytes:
        record.pop(key, None)
        return _dumps(record)

    return build


def _raw(key: str, raw: bytes) -> Callable[[dict], bytes]:
    """Set `key` to raw bytes json.dumps refuses to write (NaN, control characters, bad UTF-8)."""

    def build(record: dict) -> bytes:
        marker = "\ue000raw\ue000"  # a private-use string that never occurs in sample data
        record[key] = marker
        return _dumps(record).replace(_dumps(marker), raw)

    return build


def _truncated(record: dict) -> bytes:
    text = _dumps(record).decode("utf-8")
    return text[: len(text) * 2 // 3].encode("utf-8")  # cut on characters, so the bytes stay valid UTF-8


def _duplicate_key(record: dict) -> bytes:
    return _dumps(record)[:-1] + b',"event_type":"purchase"}'


def _as_array(record: dict) -> bytes:
    return _dumps(list(record.values()))


def _user_id_as_string(record: dict) -> bytes:
    record["user_id"] = str(record["user_id"])
    return _dumps(record)


def _id_as_number(record: dict) -> bytes:
    record["event_id"] = int(record["event_id"].rsplit("-", 1)[1])
    return _dumps(record)


_VARIANT_GROUPS: tuple[tuple[_Variant, ...], ...] = (
    (
        _Variant("malformed_json", "truncated object (broken syntax)", _truncated),
        _Variant("malformed_json", "NaN token as value", _raw("value", b"NaN")),
        _Variant("malformed_json", "Infinity token as value", _raw("value", b"Infinity")),
        _Variant("malformed_json", "duplicate key event_type in one object", _duplicate_key),
        _Variant("malformed_json", "raw TAB character inside a string", _raw("properties", b'{"note":"a\tb"}')),
    ),
    (
        _Variant("invalid_utf8", "raw bytes 0xff 0xfe in app_version", _raw("app_version", b'"3.1.0\xff\xfe"')),
        _Variant("invalid_utf8", "lone surrogate (CESU-8) in app_version", _raw("app_version", b'"c\xed\xa0\x80"')),
    ),
    (
        _Variant("wrong_type", "JSON array instead of an object", _as_array),
        _Variant("wrong_type", 'user_id is a string (e.g. "123")', _user_id_as_string),
        _Variant("wrong_type", 'value is the string "9.99"', _set("value", "9.99")),
        _Variant("wrong_type", "value is true", _set("value", True)),
        _Variant("wrong_type", "event_id is a number", _id_as_number),
    ),
    (_Variant("unknown_field", 'extra top-level field "colour"', _set("colour", "blue")),),
    (
        _Variant("missing_field", "event_type absent", _drop("event_type")),
        _Variant("missing_field", "user_id is null", _set("user_id", None)),
        _Variant("missing_field", "event_ts absent", _drop("event_ts")),
    ),
    (
        _Variant("invalid_value", 'event_type "Purchase" (wrong case)', _set("event_type", "Purchase")),
        _Variant("invalid_value", "user_id 0", _set("user_id", 0)),
        _Variant("invalid_value", "user_id 2^63", _set("user_id", 2**63)),
        _Variant("invalid_value", "value -1", _set("value", -1)),
        _Variant("invalid_value", "value 1.234 (three decimals)", _set("value", 1.234)),
        _Variant("invalid_value", "value 10^16", _set("value", 10**16)),
        _Variant("invalid_value", "event_ts on 2026-02-30 (no such day)", _set("event_ts", "2026-02-30T00:00:00Z")),
        _Variant("invalid_value", "event_ts in 1999", _set("event_ts", "1999-12-31T23:59:59.999999Z")),
        _Variant("invalid_value", "event_id of 129 characters", _set("event_id", "e" * 129)),
        _Variant("invalid_value", 'event_id ""', _set("event_id", "")),
        _Variant("invalid_value", "U+0000 in a properties string", _set("properties", {"note": "nul\x00here"})),
        _Variant("invalid_value", "app_version of 65 characters", _set("app_version", "9." + "9" * 63)),
    ),
    (
        _Variant(
            "oversized_record",
            "line over 1 MiB (huge properties string)",
            _set("properties", {"blob": "x" * (MAX_LINE_BYTES + 1024)}),
        ),
    ),
    (_Variant("conflicting_duplicate", "", None),),  # built from an earlier delivered event, see below
)


def _round_robin(groups: tuple[tuple[_Variant, ...], ...]) -> list[_Variant]:
    """Every reason code once, then every code's second variant, ...: a short cycle covers all codes."""
    out: list[_Variant] = []
    for k in range(max(len(g) for g in groups)):
        out.extend(g[k] for g in groups if k < len(g))
    return out


_VARIANTS = _round_robin(_VARIANT_GROUPS)


def _plant_defects(
    rng: random.Random, files: list[tuple[str, list[_Slot]]], evts: list[_Event], defect_rate: float
) -> list[bool]:
    """Replace about defect_rate × events first deliveries by defects; returns which events were replaced."""
    has_copy = [False] * len(evts)
    for _, slots in files:
        for s in slots:
            has_copy[s.event] |= s.is_copy
    # Only lines whose event is delivered once, so no valid copy of a replaced event turns up elsewhere.
    eligible = [[s for s in slots if not s.is_copy and not has_copy[s.event]] for _, slots in files]
    total = min(max(1, round(defect_rate * len(evts))), sum(len(c) for c in eligible))
    chosen: list[tuple[int, _Slot]] = []
    for f, (candidates, quota) in enumerate(zip(eligible, _proportional(total, [len(c) for c in eligible]))):
        chosen.extend((f, s) for s in rng.sample(candidates, quota))  # same share in every file

    replaced = [False] * len(evts)
    for _, s in chosen:
        replaced[s.event] = True
    valid_by_file = [[s.event for s in slots if not s.is_copy and not replaced[s.event]] for _, slots in files]
    # Conflicts on purchases change the amount, which is what a silent overwrite would falsify.
    priced_by_file = [[i for i in valid if _has_amount(evts[i])] for valid in valid_by_file]

    rng.shuffle(chosen)  # spread the variant cycle over the files
    variants = cycle(_VARIANTS)
    waiting: list[_Variant] = []  # conflicting duplicates that came up for a slot with no earlier file
    oversized_done = False
    for f, slot in chosen:
        can_conflict = any(valid_by_file[:f])
        variant = waiting.pop() if waiting and can_conflict else None
        while variant is None:
            v = next(variants)
            if v.reason_code == "oversized_record" and oversized_done:
                continue  # at most one 1 MiB line per sample
            if v.reason_code == "conflicting_duplicate" and not can_conflict:
                waiting.append(v)
                continue
            variant = v
        oversized_done |= variant.reason_code == "oversized_record"
        if variant.build is None:  # a conflicting duplicate of a valid event delivered in an earlier file
            g = rng.choice([g for g in range(f) if valid_by_file[g]])
            pool = priced_by_file[g] if priced_by_file[g] and rng.random() < 0.5 else valid_by_file[g]
            slot.defect = _conflicting_copy(evts[rng.choice(pool)], files[g][0])
        else:  # builders get a shallow copy: they replace values, never mutate nested ones
            line = variant.build(dict(evts[slot.event].record))
            slot.defect = _Planted(variant.reason_code, variant.description, line)
    return replaced


def _proportional(total: int, weights: list[int]) -> list[int]:
    """Split total in proportion to weights (largest remainder, integer arithmetic, ties by position)."""
    whole = sum(weights)
    quotas = [total * w // whole for w in weights]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in by_remainder[: total - sum(quotas)]:
        quotas[i] += 1
    return quotas


def _has_amount(event: _Event) -> bool:
    return isinstance(event.value, (int, float)) and not isinstance(event.value, bool)


def _conflicting_copy(original: _Event, original_file: str) -> _Planted:
    """Same idempotency key as a valid earlier delivery, different payload: must not silently overwrite."""
    record = dict(original.record)
    value = original.value
    if isinstance(value, (int, float)) and _has_amount(original):
        record["value"] = round(value + 1, 2)
        change = f"value {record['value']} instead of {value}"
    else:
        record["app_version"] = (original.app_version or "0.0") + "-conflict"
        change = f"app_version {record['app_version']!r} instead of {original.app_version!r}"
    description = f"same key as {original.event_id} (first delivered in {original_file}) but {change}"
    return _Planted("conflicting_duplicate", description, _dumps(record))


# -------------------------------------------------------------------------------------------- writing


def _write_files(
    rng: random.Random,
    out_dir: Path,
    files: list[tuple[str, list[_Slot]]],
    evts: list[_Event],
    plant_quirks: bool,
) -> tuple[list[Path], list[PlantedDefect]]:
    """Write every file; with plant_quirks also a BOM, a CRLF file and blank lines (all legal, not defects)."""
    bom_file, crlf_file = 1 % len(files), 2 % len(files)
    paths: list[Path] = []
    defects: list[PlantedDefect] = []
    for f, (rel, slots) in enumerate(files):
        rows: list[tuple[bytes, _Planted | None]] = [
            (s.defect.line if s.defect else evts[s.event].line, s.defect) for s in slots
        ]
        if plant_quirks:
            _insert_blank_lines(rng, rows, trailing=f == len(files) - 1)
        newline = b"\r\n" if plant_quirks and f == crlf_file else b"\n"
        body = newline.join(line for line, _ in rows) + newline
        if plant_quirks and f == bom_file:
            body = BOM + body
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        paths.append(path)
        for n, (_, planted) in enumerate(rows, 1):
            if planted is not None:
                defects.append(PlantedDefect(rel, n, planted.reason_code, planted.description))
    return paths, defects


def _insert_blank_lines(rng: random.Random, rows: list[tuple[bytes, _Planted | None]], trailing: bool) -> None:
    """Blank lines are skipped by the loader but still count in physical line numbers."""
    for _ in range(rng.randint(0, 2)):
        rows.insert(rng.randint(0, len(rows)), (b"", None))
    if trailing:
        rows.append((b"", None))
