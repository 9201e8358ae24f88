"""Deterministic sample files of orders (CSV, contract `orders` version 1), like a shop's daily order export.

Layout: one folder per delivery date, files named so that lexicographic path order is delivery order:

    <out_dir>/orders/2026-03-01/part-0000.csv
    <out_dir>/orders/2026-03-02/part-0000.csv
    ...
    <out_dir>/_planted_defects_orders.json     (only when defect_rate > 0; outside orders/**, so never routed)

What is simulated.  Each order goes through versions — placed → paid → shipped → delivered, some cancelled
(before or after payment, then often refunded), some refunded after delivery (partly or fully: `amount` is
what the customer is still charged, so it drops, down to 0.00 for a full refund), a few with an extra version
of the same status (a tracking update).  Every version is one row with the same order_id, user_id, currency
and placed_at and a strictly later updated_at; the first version's updated_at is its placed_at.  Versions
whose updated_at falls after the window have not happened yet and are not delivered.  A version is normally
delivered in the file of its updated_at's UTC date, ordered by updated_at; ~3 % are late (1 to 6 days), ~3 %
are out of place within their file, and ~1.5 % are delivered again as byte-identical rows (a third in the
same file, the rest in one of the next three files).  So versions of one order arrive out of order, across
files and within one.  Timestamps use every spelling the contract allows (mostly
`YYYY-MM-DDTHH:MM:SS.ffffffZ`; also a space separator, no offset, 0 or 3 fraction digits, +02:00, -05:00,
+05:30: an offset near midnight moves the UTC date).  is_gift is true, false or empty (absent).  Currencies
EUR, USD, GBP, JPY (JPY amounts are whole, still at scale 2: "4500" or "4500.00"); amounts have at most two
decimals, a few are 0.00 and a few are large B2B orders up to 999999999999.99.  A few order ids need CSV
quoting (a comma, a double quote) and a few are exactly 64 code points of non-ASCII text (more than 64 bytes).
No cell ever holds a line break, so every record is one physical line.

Planted defects (defect_rate R > 0): about R × rows rows delivered only once are replaced by defects, spread
over the files in proportion to their size, cycling through every reason code a CSV row can have:
oversized_record (at most one per sample: an order_id of 1 MiB), invalid_utf8, malformed_csv (one cell too
many, one too few, a semicolon-separated row), missing_field (a required cell empty), wrong_type (a cell that
cannot be read as its type), invalid_value (outside its rule) and conflicting_duplicate (the order_id and
updated_at of a valid row in an earlier file — sometimes with updated_at spelled differently, same instant —
and a different amount).  Each is listed with its file, physical line number and reason code.
`unknown_field` and `malformed_json` are not planted: they cannot arise from a CSV row (a header column
outside the contract would make every row of that file unknown_field, which is a file-level problem, not a
row defect; CSV is never parsed as JSON).  Also with R > 0, legal quirks that are not defects: one file starts
with a UTF-8 BOM, one uses CRLF line ends, one names the columns in another order, and a few blank or
whitespace-only lines (skipped, but counted in physical line numbers).

Determinism: all randomness comes from one random.Random(seed), consumed in list order; no wall clock, no
set iteration, no hash-dependent ordering.  Same arguments → byte-identical files.

`current_versions`, `expected_orders_daily` and `valid_rows` are plain-Python references (Decimal arithmetic,
no SQL) for testing stg_orders and fct_orders_daily against.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import cycle
from pathlib import Path
from typing import Any

from evident.samples.common import check_sizes, write_defect_list
from evident.samples.timestamps import CANONICAL, DAY_US, MICROS, TsStyle

__all__ = [
    "FIELDS",
    "REASON_CODES",
    "STATUSES",
    "OrdersSampleResult",
    "PlantedDefect",
    "current_versions",
    "expected_orders_daily",
    "generate_orders_sample",
    "parse_timestamp",
    "valid_rows",
]

FIELDS = ("order_id", "user_id", "status", "amount", "currency", "placed_at", "updated_at", "is_gift")
STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled", "refunded")
# Every reason code a CSV row can have (see the module docstring for unknown_field and malformed_json).
REASON_CODES = (
    "oversized_record",
    "invalid_utf8",
    "malformed_csv",
    "missing_field",
    "wrong_type",
    "invalid_value",
    "conflicting_duplicate",
)
MANIFEST_NAME = "_planted_defects_orders.json"
SOURCE_DIR = "orders"

MAX_RECORD_BYTES = 1 << 20  # the contract's max_record_bytes
MAX_AMOUNT_CENTS = 10**14 - 1  # 999999999999.99, the largest amount below 10^12
DEFAULT_ROWS_PER_PART = 50_000

LATE_SHARE = 0.03
SHUFFLED_SHARE = 0.03
DUPLICATE_SHARE = 0.015
ORDERS_PER_USER = 3
LARGE_USER_IDS = (2**63 - 1, 2**63 - 2, 2**53 + 1)  # catch float64 precision loss on the way through

_I_ORDER, _I_AMOUNT, _I_UPDATED = (FIELDS.index(name) for name in ("order_id", "amount", "updated_at"))
_BOM = b"\xef\xbb\xbf"
# Fields in another order, for the one file (with quirks) whose header is not in contract order.
_REORDERED = ("updated_at", "order_id", "status", "currency", "amount", "user_id", "is_gift", "placed_at")


# ----------------------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class PlantedDefect:
    file: str  # path relative to out_dir, posix
    line: int  # 1-based physical line number (header and blank lines count)
    reason_code: str
    description: str


@dataclass
class OrdersSampleResult:
    files: list[Path]
    rows_written: int = 0  # data rows in all files: valid versions, exact copies and planted defects
    valid_versions: int = 0  # distinct valid order versions delivered (distinct idempotency keys)
    orders: int = 0  # distinct orders with at least one valid version
    duplicate_deliveries: int = 0  # extra byte-identical copies of already delivered valid rows
    late_versions: int = 0  # valid versions first delivered in a file dated after their updated_at's UTC date
    out_of_order_versions: int = 0  # valid versions first delivered after a later version of the same order
    defects: list[PlantedDefect] = field(default_factory=list)
    manifest: Path | None = None  # where the defects are listed (None when defect_rate == 0)


def generate_orders_sample(
    out_dir: Path,
    *,
    orders: int = 2000,
    days: int = 7,
    seed: int = 42,
    defect_rate: float = 0.0,
    start_date: date = date(2026, 3, 1),
    rows_per_part: int = DEFAULT_ROWS_PER_PART,
) -> OrdersSampleResult:
    """Write a deterministic orders sample under out_dir/orders/ and say what was planted in it."""
    _check_arguments(orders, days, defect_rate, start_date, rows_per_part)
    out_dir = Path(out_dir)
    rng = random.Random(seed)
    window_start = (start_date.toordinal() - date(1970, 1, 1).toordinal()) * DAY_US

    rows = _simulate_orders(rng, orders, days, window_start)
    by_day, copies = _plan_deliveries(rng, rows, days, window_start)
    files = _split_into_files(by_day, start_date, rows_per_part)
    if defect_rate > 0:
        _plant_defects(rng, files, rows, defect_rate)
    paths, defects, rows_written = _write_files(rng, out_dir, files, rows, quirks=defect_rate > 0)

    manifest = write_defect_list(out_dir / MANIFEST_NAME, defects, planted=defect_rate > 0)

    late, out_of_order, valid, order_ids = _delivery_stats(files, rows)
    return OrdersSampleResult(
        files=paths,
        rows_written=rows_written,
        valid_versions=valid,
        orders=order_ids,
        duplicate_deliveries=copies,
        late_versions=late,
        out_of_order_versions=out_of_order,
        defects=defects,
        manifest=manifest,
    )


_TS_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?"
    r"(Z|[+-][0-9]{2}:[0-5][0-9])?"
)


def parse_timestamp(value: str | datetime) -> datetime:
    """A contract timestamp (`YYYY-MM-DD(T| )HH:MM:SS[.f{1,6}][Z|±HH:MM]`, no offset = UTC) as an aware UTC
    datetime; a datetime passes through (naive = UTC). ValueError when it is not one."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    m = _TS_RE.fullmatch(value)
    if m is None:
        raise ValueError(f"not a contract timestamp: {value!r}")
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    micro = int((fraction or "").ljust(6, "0"))
    local = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=UTC)
    if offset in (None, "Z"):
        return local
    sign = 1 if offset[0] == "+" else -1
    return local - sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))


def current_versions(rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """order_id → the row with the greatest updated_at (compared as instants, whatever the spelling).

    rows are valid rows in landing order (mappings with at least order_id and updated_at; updated_at a
    contract timestamp text or a datetime). Two rows with the same order_id and the same instant share an
    idempotency key, and the first landed stays: on a tie the earlier row is kept."""
    best: dict[str, tuple[datetime, Mapping[str, Any]]] = {}
    for row in rows:
        order_id = row["order_id"]
        ts = parse_timestamp(row["updated_at"])
        held = best.get(order_id)
        if held is None or ts > held[0]:
            best[order_id] = (ts, row)
    return {order_id: row for order_id, (_, row) in best.items()}


def expected_orders_daily(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """DESIGN's fct_orders_daily from valid rows (landing order): one dict per (order_date, status) that has
    orders — order_date (UTC date of the current version's placed_at), status (current), orders (count),
    amount (Decimal sum at scale 2) — sorted by (order_date, status)."""
    counts: dict[tuple[date, str], list] = {}
    for row in current_versions(rows).values():
        grain = (parse_timestamp(row["placed_at"]).date(), str(row["status"]))
        acc = counts.setdefault(grain, [0, Decimal(0)])
        acc[0] += 1
        acc[1] += Decimal(str(row["amount"]))
    cent = Decimal("0.01")
    return [
        {"order_date": d, "status": s, "orders": n, "amount": total.quantize(cent)}
        for (d, s), (n, total) in sorted(counts.items())
    ]


def valid_rows(out_dir: Path) -> list[dict[str, str]]:
    """Every row of the sample under out_dir except the planted defects (exact copies included), in landing
    order (lexicographic path order, then line order); empty cells left out (= absent). For tests only: it
    trusts the sample's own list of planted defects."""
    out_dir = Path(out_dir)
    manifest = out_dir / MANIFEST_NAME
    planted = set()
    if manifest.exists():
        planted = {(d["file"], d["line"]) for d in json.loads(manifest.read_text(encoding="utf-8"))}
    found = sorted((p for p in (out_dir / SOURCE_DIR).rglob("*.csv") if p.is_file()),
                   key=lambda p: p.relative_to(out_dir).as_posix())
    out: list[dict[str, str]] = []
    for path in found:
        rel = path.relative_to(out_dir).as_posix()
        lines = path.read_bytes().removeprefix(_BOM).split(b"\n")
        header: list[str] | None = None
        for number, line in enumerate(lines, start=1):
            if not line.strip() or (rel, number) in planted:
                continue
            cells = next(csv.reader([line.rstrip(b"\r").decode("utf-8")]))
            if header is None:
                header = cells
                continue
            out.append({name: cell for name, cell in zip(header, cells) if cell != ""})
    return out


def _check_arguments(orders: int, days: int, defect_rate: float, start_date: date, rows_per_part: int) -> None:
    check_sizes("orders", orders, days, defect_rate, "rows_per_part", rows_per_part)
    if start_date < date(1971, 1, 1) or start_date + timedelta(days=days) > date(9999, 1, 1):
        raise ValueError(f"{days} days from {start_date} are out of range")


# ------------------------------------------------------------------------------------------ timestamps


_CANONICAL = CANONICAL
_NO_OFFSET_PRECISE = TsStyle(" ", 6, "", 0)
_TS_STYLES = (  # (weight, style): mostly canonical, some of every other allowed form
    (82, _CANONICAL),
    (4, _NO_OFFSET_PRECISE),
    (3, TsStyle("T", 0, "Z", 0)),
    (2, TsStyle(" ", 0, "", 0)),
    (3, TsStyle("T", 3, "Z", 0)),
    (3, TsStyle("T", 6, "+02:00", 120)),
    (2, TsStyle("T", 6, "-05:00", -300)),
    (1, TsStyle(" ", 3, "+05:30", 330)),
)
# A lookup table (one entry per unit of weight) is much faster than random.choices: this runs per row.
_STYLE_TABLE = tuple(style for weight, style in _TS_STYLES for _ in range(weight))


def _pick_style(rng: random.Random) -> TsStyle:
    return _STYLE_TABLE[int(rng.random() * len(_STYLE_TABLE))]


# ---------------------------------------------------------------------------------- order simulation


class _Row:
    """One order version: its cells (contract order) and where it belongs."""

    __slots__ = ("cells", "order", "updated_us", "day", "cents", "delivered_day", "has_copy", "replaced")

    def __init__(self, cells: tuple[str, ...], order: int, updated_us: int, day: int, cents: int):
        self.cells = cells
        self.order = order  # index of its order
        self.updated_us = updated_us
        self.day = day  # index of updated_at's UTC date within the window
        self.cents = cents
        self.delivered_day = day  # first delivery (set by the plan)
        self.has_copy = False
        self.replaced = False  # its only delivery was replaced by a planted defect


_CURRENCY_TABLE = tuple(c for c, weight in (("EUR", 55), ("USD", 25), ("GBP", 12), ("JPY", 8)) for _ in range(weight))


def _simulate_orders(rng: random.Random, n_orders: int, days: int, window_start: int) -> list[_Row]:
    window_end = window_start + days * DAY_US
    span = days * DAY_US
    placed = sorted(window_start + int(rng.random() * span) for _ in range(n_orders))
    n_users = n_orders // ORDERS_PER_USER + 1
    rows: list[_Row] = []
    for n, t0 in enumerate(placed):
        order_id = _order_id(rng, n + 1)
        user_id = rng.choice(LARGE_USER_IDS) if rng.random() < 0.002 else rng.randint(1, n_users)
        currency = _CURRENCY_TABLE[int(rng.random() * len(_CURRENCY_TABLE))]
        cents = _first_amount(rng, currency, n)
        gift = rng.random()
        gift_text = "true" if gift < 0.08 else "false" if gift < 0.75 else ""
        style = _pick_style(rng)
        t0 = style.truncate(t0)
        placed_text = style.format(t0)
        for k, (t, status, amount) in enumerate(_lifecycle(rng, t0, cents, currency)):
            if t >= window_end:  # not happened yet as of the last export
                break
            if k == 0:
                updated_text = placed_text  # the first version was written when the order was placed
            else:
                ts_style = _pick_style(rng)
                t = ts_style.truncate(t)  # gaps are ≥ 30 s, so versions stay strictly increasing
                updated_text = ts_style.format(t)
            is_gift = gift_text if rng.random() < 0.95 else ""  # the export sometimes leaves it out
            cells = (order_id, str(user_id), status, _amount_text(rng, amount, currency), currency, placed_text,
                     updated_text, is_gift)
            rows.append(_Row(cells, n, t, (t - window_start) // DAY_US, amount))
    return rows


def _order_id(rng: random.Random, n: int) -> str:
    """Mostly ORD-0000123; a few need CSV quoting or are 64 code points of non-ASCII text."""
    r = rng.random()
    if r < 0.003:
        return f"B2B,{n:07d}"  # a comma: quoted
    if r < 0.006:
        return f'MP "{n:07d}"'  # double quotes: quoted, doubled
    if r < 0.009:
        prefix = f"ORD-{n:07d}-"
        return prefix + "é" * (64 - len(prefix))  # exactly max_length code points, more bytes
    return f"ORD-{n:07d}"


def _first_amount(rng: random.Random, currency: str, n: int) -> int:
    """In cents."""
    if n == 7:
        return MAX_AMOUNT_CENTS  # the largest allowed amount, once per sample of 8+ orders
    r = rng.random()
    if r < 0.01:
        return 0  # a free order (a voucher covered it)
    if r < 0.012:
        return rng.randrange(10**8, MAX_AMOUNT_CENTS) // 100 * 100  # a large B2B order
    if currency == "JPY":
        return rng.randrange(300, 60_000) * 100  # whole yen
    return min(int(rng.lognormvariate(8.3, 0.9)), 5_000_000) + 1  # typically ~40.00


def _lifecycle(rng: random.Random, t0: int, cents: int, currency: str) -> list[tuple[int, str, int]]:
    """(updated_us, status, amount in cents) of every version, the first at t0."""
    whole = 100 if currency == "JPY" else 1
    out = [(t0, "placed", cents)]
    t = t0

    def later(lo_s: int, hi_s: int) -> int:
        nonlocal t
        t += lo_s * MICROS + int(rng.random() * ((hi_s - lo_s) * MICROS))  # randrange, faster
        return t

    if rng.random() < 0.10:  # never paid
        if rng.random() < 0.6:
            out.append((later(3600, 48 * 3600), "cancelled", cents))
        return out
    if cents and rng.random() < 0.05:  # a voucher or corrected shipping fee applied at payment
        cents -= min(cents, rng.randrange(1, 1000) * whole)
    out.append((later(30, 2 * 3600), "paid", cents))
    if rng.random() < 0.04:  # cancelled after payment, usually refunded
        out.append((later(3600, 24 * 3600), "cancelled", cents))
        if rng.random() < 0.7:
            out.append((later(86_400, 3 * 86_400), "refunded", 0))
        return out
    out.append((later(4 * 3600, 48 * 3600), "shipped", cents))
    if rng.random() < 0.08:  # a tracking update: a new version, same status
        out.append((later(1800, 12 * 3600), "shipped", cents))
    if rng.random() < 0.03:  # lost in transit: stays shipped
        return out
    out.append((later(86_400, 4 * 86_400), "delivered", cents))
    if rng.random() < 0.06:
        refund = cents if rng.random() < 0.4 else cents * rng.randrange(10, 90) // 100 // whole * whole
        out.append((later(86_400, 10 * 86_400), "refunded", cents - refund))
    return out


def _amount_text(rng: random.Random, cents: int, currency: str) -> str:
    whole, frac = divmod(cents, 100)
    r = rng.random()
    if frac == 0 and (currency == "JPY" or r < 0.3) and r < 0.5:
        return str(whole)  # "4500": an integer is a decimal with 0 places
    if frac % 10 == 0 and r > 0.97:
        return f"{whole}.{frac // 10}"  # "12.5"
    return f"{whole}.{frac:02d}"


# ------------------------------------------------------------------------------------------ deliveries


@dataclass
class _Slot:
    """One delivered row: a version's first delivery or an exact copy of it, or a defect in its place."""

    row: int  # index into the rows list
    is_copy: bool
    key: int  # position within the delivery day (microseconds of data time)
    seq: int  # tie-breaker, so a same-day copy sorts after its original
    defect: _Planted | None = None


def _plan_deliveries(rng: random.Random, rows: list[_Row], days: int, window_start: int) -> tuple[
        list[list[_Slot]], int]:
    """Which delivery day (file date) carries each version and each exact copy, in file order."""
    last = days - 1
    by_day: list[list[_Slot]] = [[] for _ in range(days)]
    originals: list[_Slot] = []
    for i, row in enumerate(rows):
        d, key = row.day, row.updated_us
        r = rng.random()
        if d < last and r < LATE_SHARE:  # late: a later file, anywhere in it
            d += 1 if d + 1 == last or rng.random() < 0.65 else rng.randint(2, min(6, last - d))
            key = window_start + d * DAY_US + int(rng.random() * DAY_US)
        elif r < LATE_SHARE + SHUFFLED_SHARE:  # out of place within its own file
            key += int((rng.random() - 0.5) * 6 * 3600 * MICROS)
        row.delivered_day = d
        slot = _Slot(i, False, key, i)
        by_day[d].append(slot)
        originals.append(slot)

    seq = len(rows)
    for i in rng.sample(range(len(rows)), round(DUPLICATE_SHARE * len(rows))):
        rows[i].has_copy = True
        d = rows[i].delivered_day
        if d == last or rng.random() < 1 / 3:  # again in the same file, after the original
            key = originals[i].key + rng.randrange(1, 6 * 3600 * MICROS)
        else:  # redelivered in one of the next three files
            d = rng.randint(d + 1, min(d + 3, last))
            key = window_start + d * DAY_US + int(rng.random() * DAY_US)
        by_day[d].append(_Slot(i, True, key, seq))
        seq += 1

    for slots in by_day:
        slots.sort(key=lambda s: (s.key, s.seq))
    return by_day, seq - len(rows)


def _split_into_files(by_day: list[list[_Slot]], start_date: date, rows_per_part: int) -> list[
        tuple[str, list[_Slot]]]:
    """(relative path, slots) per file; zero-padded names keep lexicographic order = delivery order. A day with
    nothing to deliver still gets a file (header only): an export runs every day."""
    files = []
    for d, slots in enumerate(by_day):
        day = date.fromordinal(start_date.toordinal() + d).isoformat()
        for part, start in enumerate(range(0, max(1, len(slots)), rows_per_part)):
            files.append((f"{SOURCE_DIR}/{day}/part-{part:04d}.csv", slots[start:start + rows_per_part]))
    return files


def _delivery_stats(files: list[tuple[str, list[_Slot]]], rows: list[_Row]) -> tuple[int, int, int, int]:
    """(late, out of order, valid versions, orders) over the valid first deliveries, in landing order."""
    newest: dict[int, int] = {}  # order → greatest updated_us delivered so far
    late = out_of_order = valid = 0
    for _, slots in files:
        for s in slots:
            row = rows[s.row]
            if s.is_copy or row.replaced:
                continue
            valid += 1
            late += row.delivered_day > row.day
            seen = newest.get(row.order)
            if seen is not None and seen > row.updated_us:
                out_of_order += 1
            else:
                newest[row.order] = row.updated_us
    return late, out_of_order, valid, len(newest)


# ------------------------------------------------------------------------------------------- defects


@dataclass(frozen=True)
class _Planted:
    reason_code: str
    description: str
    cells: dict[str, str]  # field → cell (written in the file's header order)
    reshape: Callable[[list[str]], list[str]] | None = None  # malformed_csv: change the cell count


Cells = dict[str, str]


@dataclass(frozen=True)
class _Variant:
    reason_code: str
    description: str
    build: Callable[[Cells], Cells] | None  # from the replaced row's cells; None: a conflicting duplicate
    reshape: Callable[[list[str]], list[str]] | None = None


def _set(name: str, value: str) -> Callable[[Cells], Cells]:
    return lambda cells: {**cells, name: value}


def _append(name: str, suffix: str) -> Callable[[Cells], Cells]:
    return lambda cells: {**cells, name: cells[name] + suffix}


def _same(cells: Cells) -> Cells:
    return cells


def _semicolons(cells: list[str]) -> list[str]:
    return [";".join(cells)]


# Surrogate escapes stand for raw bytes: they are written with errors="surrogateescape".
_VARIANT_GROUPS: tuple[tuple[_Variant, ...], ...] = (
    (_Variant("oversized_record", f"order_id of {MAX_RECORD_BYTES} bytes: the row is over max_record_bytes",
              _set("order_id", "ORD-" + "X" * MAX_RECORD_BYTES)),),
    (
        _Variant("invalid_utf8", "raw bytes 0xff 0xfe in order_id", _append("order_id", "\udcff\udcfe")),
        _Variant("invalid_utf8", "Latin-1 é (0xe9) in order_id", _append("order_id", "-caf\udce9")),
        _Variant("invalid_utf8", "lone surrogate (CESU-8 0xed 0xa0 0x80) in order_id",
                 _append("order_id", "\udced\udca0\udc80")),
    ),
    (
        _Variant("malformed_csv", "one cell more than the header (trailing comma)", _same,
                 lambda cells: [*cells, ""]),
        _Variant("malformed_csv", "one cell fewer than the header", _same, lambda cells: cells[:-1]),
        _Variant("malformed_csv", "semicolon-separated row (one cell)", _same, _semicolons),
    ),
    (
        _Variant("missing_field", "amount empty", _set("amount", "")),
        _Variant("missing_field", "updated_at empty", _set("updated_at", "")),
        _Variant("missing_field", "status empty", _set("status", "")),
        _Variant("missing_field", "user_id empty", _set("user_id", "")),
        _Variant("missing_field", "order_id empty", _set("order_id", "")),
        _Variant("missing_field", "currency empty", _set("currency", "")),
        _Variant("missing_field", "placed_at empty", _set("placed_at", "")),
    ),
    (
        _Variant("wrong_type", 'amount "abc"', _set("amount", "abc")),
        _Variant("wrong_type", 'user_id "1.5"', _set("user_id", "1.5")),
        _Variant("wrong_type", 'is_gift "maybe"', _set("is_gift", "maybe")),
        _Variant("wrong_type", 'amount "12,50" (decimal comma)', _set("amount", "12,50")),
        _Variant("wrong_type", 'user_id "u-42"', _set("user_id", "u-42")),
        _Variant("wrong_type", 'is_gift "yes"', _set("is_gift", "yes")),
    ),
    (
        _Variant("invalid_value", "amount -5.00", _set("amount", "-5.00")),
        _Variant("invalid_value", "amount 12.345 (three decimals)", _set("amount", "12.345")),
        _Variant("invalid_value", 'currency "usd" (fails [A-Z]{3})', _set("currency", "usd")),
        _Variant("invalid_value", 'status "returned" (not in the enum)', _set("status", "returned")),
        _Variant("invalid_value", "placed_at 2026-02-30 (no such day)", _set("placed_at", "2026-02-30T10:00:00Z")),
        _Variant("invalid_value", "amount 1000000000000.00 (not below 10^12)", _set("amount", "1000000000000.00")),
        _Variant("invalid_value", "order_id of 65 characters", _set("order_id", "ORD-" + "9" * 61)),
        _Variant("invalid_value", "user_id 0", _set("user_id", "0")),
        _Variant("invalid_value", 'currency "EURO"', _set("currency", "EURO")),
        _Variant("invalid_value", "updated_at at hour 24", _set("updated_at", "2026-03-01T24:00:00Z")),
        _Variant("invalid_value", 'placed_at "01/03/2026 10:00" (not the contract form)',
                 _set("placed_at", "01/03/2026 10:00")),
        _Variant("invalid_value", "updated_at offset +05:60", _set("updated_at", "2026-03-01T10:00:00+05:60")),
    ),
    (_Variant("conflicting_duplicate", "", None),),  # built from an earlier valid row, see _conflict
)


def _balanced(groups: tuple[tuple[_Variant, ...], ...]) -> list[_Variant]:
    """Every reason code in turn, each cycling through its own variants: any 7 consecutive defects cover every
    code, and every code gets the same share whatever its number of variants."""
    rounds = max(len(g) for g in groups)
    return [g[k % len(g)] for k in range(rounds) for g in groups]


_VARIANTS = _balanced(_VARIANT_GROUPS)


def _plant_defects(rng: random.Random, files: list[tuple[str, list[_Slot]]], rows: list[_Row],
                   defect_rate: float) -> None:
    """Replace about defect_rate × rows first deliveries (of versions delivered once) by defects."""
    # Only versions delivered once: no valid copy of a replaced version turns up elsewhere.
    eligible = [[p for p, s in enumerate(slots) if not rows[s.row].has_copy] for _, slots in files]
    n_rows = sum(len(slots) for _, slots in files)
    total = min(max(1, round(defect_rate * n_rows)), sum(len(c) for c in eligible))
    chosen: list[tuple[int, int]] = []  # (file, position)
    for f, (candidates, quota) in enumerate(zip(eligible, _proportional(total, [len(c) for c in eligible]))):
        chosen.extend((f, p) for p in rng.sample(candidates, quota))  # same share in every file
    for f, p in chosen:
        rows[files[f][1][p].row].replaced = True

    valid_positions = [[p for p, s in enumerate(slots) if not rows[s.row].replaced] for _, slots in files]
    with_valid = [g for g, positions in enumerate(valid_positions) if positions]
    rng.shuffle(chosen)  # spread the variant cycle over the files
    variants = cycle(_VARIANTS)
    oversized_done = False
    for f, p in chosen:
        slot = files[f][1][p]
        planted = None
        for _ in range(len(_VARIANTS)):
            v = next(variants)
            if v.reason_code == "oversized_record" and oversized_done:
                continue  # at most one 1 MiB row per sample
            if v.build is None:
                planted = _conflict(rng, files, rows, valid_positions, with_valid, f, p)
                if planted is None:  # no valid row delivered before this one
                    continue
            else:
                cells = v.build(dict(zip(FIELDS, rows[slot.row].cells)))
                planted = _Planted(v.reason_code, v.description, cells, v.reshape)
            break
        assert planted is not None  # the cycle holds variants that always apply
        oversized_done |= planted.reason_code == "oversized_record"
        slot.defect = planted


def _proportional(total: int, weights: list[int]) -> list[int]:
    """Split total in proportion to weights (largest remainder, integer arithmetic, ties by position)."""
    whole = sum(weights)
    if not whole:
        return [0] * len(weights)
    quotas = [total * w // whole for w in weights]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in by_remainder[: total - sum(quotas)]:
        quotas[i] += 1
    return quotas


def _conflict(rng: random.Random, files: list[tuple[str, list[_Slot]]], rows: list[_Row],
              valid_positions: list[list[int]], with_valid: list[int], f: int, p: int) -> _Planted | None:
    """The key of a valid row delivered earlier (an earlier file; in a one-file sample, earlier in the same
    file) with a different amount: the first landed row must stay, this one is quarantined."""
    earlier = [g for g in with_valid if g < f]
    if earlier:
        g = rng.choice(earlier)
        pool = valid_positions[g]
    else:
        g = f
        pool = [q for q in valid_positions[f] if q < p]
    if not pool:
        return None
    original = rows[files[g][1][rng.choice(pool)].row]
    cells = dict(zip(FIELDS, original.cells))
    delta = 100 if original.cents < MAX_AMOUNT_CENTS - 100 else -100
    cents = original.cents + delta
    cells["amount"] = f"{cents // 100}.{cents % 100:02d}"
    change = f"amount {cells['amount']} instead of {original.cells[_I_AMOUNT]}"
    if rng.random() < 0.5:  # the same instant spelled another way: still the same key
        style = _NO_OFFSET_PRECISE if cells["updated_at"].endswith("Z") else _CANONICAL
        cells["updated_at"] = style.format(original.updated_us)
        change += f", updated_at spelled {cells['updated_at']!r} (same instant as {original.cells[_I_UPDATED]!r})"
    description = (f"same order_id and updated_at as the valid row of {original.cells[_I_ORDER]!r} first "
                   f"delivered in {files[g][0]}, but {change}")
    return _Planted("conflicting_duplicate", description, cells)


# -------------------------------------------------------------------------------------------- writing


def _write_files(rng: random.Random, out_dir: Path, files: list[tuple[str, list[_Slot]]], rows: list[_Row],
                 quirks: bool) -> tuple[list[Path], list[PlantedDefect], int]:
    """Write every file; with quirks also a BOM, a CRLF file, a reordered header and blank lines (all legal)."""
    n = len(files)
    bom_file, crlf_file, reordered_file = 1 % n, 2 % n, 3 % n
    paths: list[Path] = []
    defects: list[PlantedDefect] = []
    rows_written = 0
    for f, (rel, slots) in enumerate(files):
        header = _REORDERED if quirks and f == reordered_file else FIELDS
        order = [FIELDS.index(name) for name in header]
        newline = "\r\n" if quirks and f == crlf_file else "\n"
        blanks = sorted(rng.randrange(len(slots) + 1) for _ in range(rng.randint(0, 2))) if quirks else []

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator=newline)
        writer.writerow(header)
        line = 1
        run: list[list[str] | tuple[str, ...]] = []  # consecutive plain rows, written at once
        for position, slot in enumerate(slots):
            while blanks and blanks[0] == position:
                writer.writerows(run)
                run = []
                buf.write(("   " if blanks.pop(0) % 2 else "") + newline)  # whitespace-only or empty
                line += 1
            line += 1
            planted = slot.defect
            if planted is None:
                cells = rows[slot.row].cells
                run.append(cells if header is FIELDS else [cells[i] for i in order])
                continue
            out = [planted.cells[name] for name in header]
            run.append(planted.reshape(out) if planted.reshape else out)
            defects.append(PlantedDefect(rel, line, planted.reason_code, planted.description))
        writer.writerows(run)
        for _ in blanks:  # at the end of the file
            buf.write(newline)
        rows_written += len(slots)

        body = buf.getvalue().encode("utf-8", "surrogateescape")
        if quirks and f == bom_file:
            body = _BOM + body
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        paths.append(path)
    return paths, defects, rows_written
