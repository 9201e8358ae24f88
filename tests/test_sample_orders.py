"""The orders sample generator: deterministic, valid where it says so, honest about what it planted.

The checks read the rules from python_ingest/contracts/orders.v1.yml and apply them with plain Python here,
independent of the loader, so a generator bug and a loader bug cannot cancel out.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest
import yaml

from evident.samples.orders import (
    MANIFEST_NAME,
    REASON_CODES,
    current_versions,
    expected_orders_daily,
    generate_orders_sample,
    valid_rows,
)

CONTRACT_PATH = Path(__file__).resolve().parents[1] / "python_ingest" / "contracts" / "orders.v1.yml"
CONTRACT = yaml.safe_load(CONTRACT_PATH.read_text(encoding="utf-8"))
RULES: dict[str, dict] = CONTRACT["fields"]
MAX_BYTES: int = CONTRACT["max_record_bytes"]
BOM = b"\xef\xbb\xbf"
CSV_REASON_CODES = {"oversized_record", "invalid_utf8", "malformed_csv", "missing_field", "wrong_type",
                    "invalid_value", "conflicting_duplicate"}
SMALL = {"orders": 1500, "days": 5}
TS_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:[0-5]\d)?")
INT_RE = re.compile(r"[+-]?[0-9]+")
NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
NEXT_STATUS = {  # the lifecycle a shop's export shows
    "placed": {"paid", "cancelled"},
    "paid": {"shipped", "cancelled"},
    "shipped": {"shipped", "delivered"},
    "delivered": {"refunded"},
    "cancelled": {"refunded"},
    "refunded": set(),
}


# ------------------------------------------------------------------------ an independent contract check


class Invalid(Exception):
    def __init__(self, reason_code: str):
        super().__init__(reason_code)
        self.reason_code = reason_code


def utc_instant(text: str) -> datetime:
    """A contract timestamp as an aware UTC datetime; Invalid('invalid_value') when it is not a real one."""
    m = TS_RE.fullmatch(text)
    if m is None:
        raise Invalid("invalid_value")
    y, mo, d, h, mi, s, frac, offset = m.groups()
    try:
        local = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), int((frac or "").ljust(6, "0")),
                         tzinfo=UTC)
    except ValueError:
        raise Invalid("invalid_value") from None
    if offset in (None, "Z"):
        return local
    delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    return local - delta if offset[0] == "+" else local + delta


def decimal_places(number: Decimal) -> int:
    exponent = number.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def check_cell(name: str, cell: str):
    """The typed value of a non-empty cell, or Invalid(wrong_type | invalid_value)."""
    rule = RULES[name]
    kind = rule["type"]
    if kind == "string":
        if "\x00" in cell or len(cell) < rule.get("min_length", 0) or len(cell) > rule.get("max_length", 1 << 62):
            raise Invalid("invalid_value")
        if "enum" in rule and cell not in rule["enum"]:
            raise Invalid("invalid_value")
        if "pattern" in rule and re.fullmatch(rule["pattern"], cell) is None:
            raise Invalid("invalid_value")
        return cell
    if kind == "integer":
        if not INT_RE.fullmatch(cell):
            raise Invalid("wrong_type")
        value = int(cell)
        if value < rule.get("minimum", value) or value > rule.get("maximum", value):
            raise Invalid("invalid_value")
        return value
    if kind == "decimal":
        if not NUMBER_RE.fullmatch(cell):
            raise Invalid("wrong_type")
        try:
            value = Decimal(cell)
        except InvalidOperation:
            raise Invalid("wrong_type") from None
        if "minimum" in rule and value < Decimal(str(rule["minimum"])):
            raise Invalid("invalid_value")
        if "maximum_exclusive" in rule and value >= Decimal(str(rule["maximum_exclusive"])):
            raise Invalid("invalid_value")
        if decimal_places(value) > rule.get("scale", 2):
            raise Invalid("invalid_value")
        return value
    if kind == "boolean":
        if cell not in ("true", "false"):
            raise Invalid("wrong_type")
        return cell == "true"
    if kind == "timestamp":
        return utc_instant(cell)
    raise AssertionError(f"the orders contract has no {kind} field")


def classify(raw: bytes, header: list[str]) -> tuple[str | None, dict | None]:
    """(reason code, None) for a bad record, (None, typed values) for a valid one — DESIGN's order of rules."""
    if len(raw) > MAX_BYTES:
        return "oversized_record", None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8", None
    try:
        cells = next(csv.reader([text], strict=True))
    except csv.Error:
        return "malformed_csv", None
    if len(cells) != len(header):
        return "malformed_csv", None
    values = {name: cell for name, cell in zip(header, cells) if cell != ""}
    if any(name not in RULES for name in values):
        return "unknown_field", None
    if any(rule["required"] and name not in values for name, rule in RULES.items()):
        return "missing_field", None
    typed = {}
    for name in RULES:  # contract order
        try:
            typed[name] = check_cell(name, values[name]) if name in values else None
        except Invalid as exc:
            return exc.reason_code, None
    return None, typed


def key_of(typed: dict) -> tuple:
    return tuple(typed[name] for name in CONTRACT["idempotency_key"])


def physical_lines(data: bytes) -> list[bytes]:
    """Physical lines without their line ends (a BOM at the start of the file is not part of line 1)."""
    lines = data.removeprefix(BOM).split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line.removesuffix(b"\r") for line in lines]


def read_sample(out_dir: Path) -> list[dict]:
    """Every record of every file, in landing order (path order, then line order), classified; conflicting
    duplicates decided against the first valid row of the same key, as the loader must."""
    records = []
    first: dict[tuple, tuple[dict, bytes]] = {}
    files = sorted((p for p in (out_dir / "orders").rglob("*") if p.is_file()),
                   key=lambda p: p.relative_to(out_dir).as_posix())
    for path in files:
        rel = path.relative_to(out_dir).as_posix()
        header = None
        for number, raw in enumerate(physical_lines(path.read_bytes()), start=1):
            if not raw.strip():
                continue
            if header is None:
                header = next(csv.reader([raw.decode("utf-8")]))
                continue
            reason, typed = classify(raw, header)
            if typed is not None:
                held = first.get(key_of(typed))
                if held is None:
                    first[key_of(typed)] = (typed, raw)
                elif held[0] != typed:
                    reason = "conflicting_duplicate"
            records.append({"file": rel, "line": number, "raw": raw, "reason": reason, "typed": typed,
                            "header": header, "day": date.fromisoformat(rel.split("/")[1])})
    return records


def tree(out_dir: Path) -> dict[str, bytes]:
    return {p.relative_to(out_dir).as_posix(): p.read_bytes() for p in sorted(out_dir.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    out = tmp_path_factory.mktemp("orders_clean")
    return out, generate_orders_sample(out, **SMALL), read_sample(out)


@pytest.fixture(scope="module")
def defective(tmp_path_factory):
    out = tmp_path_factory.mktemp("orders_defects")
    return out, generate_orders_sample(out, defect_rate=0.04, **SMALL), read_sample(out)


# ------------------------------------------------------------------------------------------- the contract


def test_contract_is_designs_orders_definition():
    assert {k: v for k, v in CONTRACT.items() if k not in ("fields", "max_record_bytes", "max_quarantine_share")} \
        == {"name": "orders", "version": 1, "format": "csv", "landing": "orders/**",
            "idempotency_key": ["order_id", "updated_at"], "partition_by": "placed_at"}
    assert CONTRACT["max_record_bytes"] == 1 << 20 and CONTRACT["max_quarantine_share"] == 0.05
    assert RULES == {
        "order_id": {"type": "string", "required": True, "min_length": 1, "max_length": 64},
        "user_id": {"type": "integer", "required": True, "minimum": 1},
        "status": {"type": "string", "required": True,
                   "enum": ["placed", "paid", "shipped", "delivered", "cancelled", "refunded"]},
        "amount": {"type": "decimal", "required": True, "scale": 2, "minimum": 0,
                   "maximum_exclusive": 1_000_000_000_000},
        "currency": {"type": "string", "required": True, "pattern": "[A-Z]{3}"},
        "placed_at": {"type": "timestamp", "required": True},
        "updated_at": {"type": "timestamp", "required": True},
        "is_gift": {"type": "boolean", "required": False},
    }


def test_contract_loads_with_the_project_loader():
    from evident.land.contracts import load_contract

    contract = load_contract("orders", 1, path=CONTRACT_PATH)
    assert contract.key_fields == ("order_id", "updated_at")
    assert contract.fields["amount"].scale == 2
    assert contract.contract_id.startswith("orders@1#")


# ---------------------------------------------------------------------------------------- determinism


def test_same_arguments_give_byte_identical_files(tmp_path):
    for rate in (0.0, 0.05):
        a, b = tmp_path / f"a{rate}", tmp_path / f"b{rate}"
        ra = generate_orders_sample(a, orders=800, days=4, seed=7, defect_rate=rate)
        rb = generate_orders_sample(b, orders=800, days=4, seed=7, defect_rate=rate)
        assert tree(a) == tree(b)
        assert [asdict(d) for d in ra.defects] == [asdict(d) for d in rb.defects]
        assert (ra.rows_written, ra.duplicate_deliveries, ra.late_versions) == \
            (rb.rows_written, rb.duplicate_deliveries, rb.late_versions)


def test_different_seeds_differ(tmp_path):
    generate_orders_sample(tmp_path / "a", orders=500, days=3, seed=1)
    generate_orders_sample(tmp_path / "b", orders=500, days=3, seed=2)
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert a.keys() == b.keys()  # same layout
    assert all(a[k] != b[k] for k in a)


def test_rerun_with_zero_defects_removes_a_stale_manifest(tmp_path):
    generate_orders_sample(tmp_path, orders=300, days=2, defect_rate=0.05)
    assert (tmp_path / MANIFEST_NAME).exists()
    generate_orders_sample(tmp_path, orders=300, days=2)
    assert not (tmp_path / MANIFEST_NAME).exists()


# --------------------------------------------------------------------------------------- clean sample


def test_layout_and_encoding(clean):
    out, result, _ = clean
    files = tree(out)
    days = [(date(2026, 3, 1) + timedelta(days=d)).isoformat() for d in range(SMALL["days"])]
    assert sorted(files) == [f"orders/{d}/part-0000.csv" for d in days]
    assert [p.relative_to(out).as_posix() for p in result.files] == sorted(files)
    assert result.manifest is None and not (out / MANIFEST_NAME).exists()
    header = ",".join(RULES).encode()
    for data in files.values():
        data.decode("utf-8")  # strict UTF-8
        assert not data.startswith(BOM) and b"\r" not in data  # LF line ends
        assert data.endswith(b"\n") and data.split(b"\n", 1)[0] == header


def test_every_row_satisfies_the_contract(clean):
    _, result, records = clean
    assert Counter(r["reason"] for r in records) == {None: len(records)}
    assert all(len(next(csv.reader([r["raw"].decode()]))) == len(RULES) for r in records)
    assert len(records) == result.rows_written
    keys = {key_of(r["typed"]) for r in records}
    assert len(keys) == result.valid_versions
    assert len({r["typed"]["order_id"] for r in records}) == result.orders == SMALL["orders"]


def test_realistic_values(clean):
    _, _, records = clean
    cells = [dict(zip(r["header"], next(csv.reader([r["raw"].decode()])))) for r in records]
    stamps = [c[name] for c in cells for name in ("placed_at", "updated_at")]
    canonical = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
    assert sum(1 for s in stamps if canonical.fullmatch(s)) > 0.7 * len(stamps)
    assert any(" " in s for s in stamps)  # space separator
    assert any(re.search(r"[+-]\d\d:\d\d$", s) for s in stamps)  # an offset
    assert any(re.search(r":\d\d(\.\d{1,5})?(Z|[+-]\d\d:\d\d)?$", s) for s in stamps)  # fewer fraction digits
    # an offset that moves the UTC date: partition = UTC date of placed_at
    assert any(r["typed"]["placed_at"].date() != date.fromisoformat(c["placed_at"][:10])
               for r, c in zip(records, cells))
    assert {c["currency"] for c in cells} == {"EUR", "USD", "GBP", "JPY"}
    assert {c["status"] for c in cells} == set(RULES["status"]["enum"])
    assert {c["is_gift"] for c in cells} == {"true", "false", ""}
    amounts = [r["typed"]["amount"] for r in records]
    assert Decimal(0) in amounts and max(amounts) == Decimal("999999999999.99")
    assert any(decimal_places(a) == 2 for a in amounts)
    assert any("." not in c["amount"] for c in cells)  # whole amounts written as integers
    assert any(b'"' in r["raw"] for r in records)  # cells that needed quoting
    assert any(len(r["typed"]["order_id"]) == 64 < len(r["typed"]["order_id"].encode()) for r in records)
    assert any(r["typed"]["user_id"] > 2**53 for r in records)


def test_versions_of_an_order(clean):
    _, result, records = clean
    by_order: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_order[r["typed"]["order_id"]].append(r)
    amount_changed = 0
    for rows in by_order.values():
        typed = sorted({key_of(r["typed"]): r["typed"] for r in rows}.values(), key=lambda t: t["updated_at"])
        assert len({(t["user_id"], t["currency"], t["placed_at"]) for t in typed}) == 1
        assert typed[0]["status"] == "placed" and typed[0]["updated_at"] == typed[0]["placed_at"]
        for before, after in zip(typed, typed[1:]):
            assert after["status"] in NEXT_STATUS[before["status"]], (before, after)
            assert after["updated_at"] > before["updated_at"]
        amount_changed += len({t["amount"] for t in typed}) > 1
    assert amount_changed > 0
    assert max(len(rows) for rows in by_order.values()) >= 5

    # Delivery: late versions (a file dated after the updated_at's UTC date), versions of one order out of
    # order across files and within one file — recounted here from the files alone.
    first_delivery: dict[tuple, dict] = {}
    for r in records:
        first_delivery.setdefault(key_of(r["typed"]), r)
    late = sum(1 for r in first_delivery.values() if r["day"] > r["typed"]["updated_at"].date())
    newest: dict[str, datetime] = {}
    out_of_order = across_files = within_file = 0
    newest_where: dict[str, dict] = {}
    for r in first_delivery.values():
        order_id, ts = r["typed"]["order_id"], r["typed"]["updated_at"]
        if order_id in newest and newest[order_id] > ts:
            out_of_order += 1
            if newest_where[order_id]["file"] == r["file"]:
                within_file += 1
            elif r["day"] > r["typed"]["updated_at"].date():
                across_files += 1  # an older version, delivered late, after a newer one
        else:
            newest[order_id], newest_where[order_id] = ts, r
    assert late == result.late_versions > 0
    assert out_of_order == result.out_of_order_versions
    assert across_files > 0 and within_file > 0


def test_duplicate_deliveries_are_byte_identical(clean):
    _, result, records = clean
    by_key: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        by_key[key_of(r["typed"])].append(r)
    copies = [rows for rows in by_key.values() if len(rows) > 1]
    assert sum(len(rows) - 1 for rows in copies) == result.duplicate_deliveries > 0
    assert all(len({r["raw"] for r in rows}) == 1 for rows in copies)
    assert any(rows[0]["file"] != rows[-1]["file"] for rows in copies)  # delivered again in a later file
    assert any(rows[0]["file"] == rows[-1]["file"] for rows in copies)  # and in the same file


# ------------------------------------------------------------------------------------------ defects


def test_every_csv_reason_code_is_planted_where_the_manifest_says(defective):
    out, result, records = defective
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert result.manifest == out / MANIFEST_NAME
    assert manifest == [asdict(d) for d in result.defects]
    assert set(REASON_CODES) == CSV_REASON_CODES == {d["reason_code"] for d in manifest}
    found = {(r["file"], r["line"], r["reason"]) for r in records if r["reason"] is not None}
    assert found == {(d["file"], d["line"], d["reason_code"]) for d in manifest}
    assert sum(1 for d in manifest if d["reason_code"] == "oversized_record") == 1
    # about defect_rate of every file, and every file within the contract's max_quarantine_share
    per_file = Counter(r["file"] for r in records)
    bad = Counter(d["file"] for d in manifest)
    assert all(bad[f] / n <= CONTRACT["max_quarantine_share"] for f, n in per_file.items())
    assert len(manifest) == round(0.04 * result.rows_written)
    assert result.valid_versions == len({key_of(r["typed"]) for r in records if r["reason"] is None})


def test_planted_lines_are_what_they_say(defective):
    out, _, records = defective
    at = {(r["file"], r["line"]): r for r in records}
    manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    for d in manifest:
        r = at[(d["file"], d["line"])]
        assert (len(r["raw"]) > MAX_BYTES) == (d["reason_code"] == "oversized_record")
        if d["reason_code"] == "oversized_record":
            continue  # over csv's default field limit; its size is the defect
        width = len(next(csv.reader([r["raw"].decode("utf-8", "replace")])))
        if d["reason_code"] == "malformed_csv":
            assert width != len(r["header"])
        else:
            assert width == len(r["header"])  # every other planted row parses to the header's width
    # the wrong_type and invalid_value cells the brief asks for are among them
    texts = " ".join(d["description"] for d in manifest)
    for cell in ('amount "abc"', 'user_id "1.5"', 'is_gift "maybe"', "amount -5.00", "12.345", '"usd"',
                 "2026-02-30"):
        assert cell in texts
    # a conflicting duplicate whose updated_at is the same instant spelled another way
    assert "same instant" in texts


def test_quirks_are_legal(defective):
    out, _, records = defective
    files = tree(out)
    csvs = {k: v for k, v in files.items() if k.endswith(".csv")}
    assert any(v.startswith(BOM) for v in csvs.values())
    assert any(b"\r\n" in v for v in csvs.values())
    assert any(not v.removeprefix(BOM).startswith(b"order_id,") for v in csvs.values())  # another column order
    assert any(not line.strip() for v in csvs.values() for line in physical_lines(v))  # blank lines
    assert set(files) - set(csvs) == {MANIFEST_NAME}
    assert {tuple(sorted(r["header"])) for r in records} == {tuple(sorted(RULES))}


def test_one_day_sample_still_plants_every_code(tmp_path):
    result = generate_orders_sample(tmp_path, orders=400, days=1, defect_rate=0.05)
    records = read_sample(tmp_path)
    found = {(r["file"], r["line"], r["reason"]) for r in records if r["reason"] is not None}
    assert found == {(d.file, d.line, d.reason_code) for d in result.defects}
    assert {d.reason_code for d in result.defects} == CSV_REASON_CODES


# --------------------------------------------------------------------------------------- references


HAND_ROWS = [
    # A: placed late on 1 March UTC; its versions arrive out of order (shipped before paid)
    {"order_id": "A", "status": "placed", "amount": "10.00", "placed_at": "2026-03-01T23:30:00Z",
     "updated_at": "2026-03-01T23:30:00Z"},
    {"order_id": "A", "status": "shipped", "amount": "10", "placed_at": "2026-03-01T23:30:00Z",
     "updated_at": "2026-03-03T08:00:00+02:00"},  # 06:00 UTC on 3 March
    {"order_id": "A", "status": "paid", "amount": "10.00", "placed_at": "2026-03-01T23:30:00Z",
     "updated_at": "2026-03-03 05:59:59.999999"},  # older than shipped, delivered after it
    # B: 01:15 at +02:00 on 2 March is 23:15 UTC on 1 March
    {"order_id": "B", "status": "paid", "amount": "0.10", "placed_at": "2026-03-02T01:15:00+02:00",
     "updated_at": "2026-03-02T01:20:00+02:00"},
    # C: partly refunded; then a second row at the same instant, spelled differently: the first one stays
    {"order_id": "C", "status": "paid", "amount": "0.20", "placed_at": "2026-03-01T12:00:00.5Z",
     "updated_at": "2026-03-01T12:05:00Z"},
    {"order_id": "C", "status": "refunded", "amount": "0.05", "placed_at": "2026-03-01T12:00:00.5Z",
     "updated_at": "2026-03-04T00:00:00.000001Z"},
    {"order_id": "C", "status": "refunded", "amount": "0.99", "placed_at": "2026-03-01T12:00:00.5Z",
     "updated_at": "2026-03-04 00:00:00.000001"},
    # D: 22:00 at -05:00 on 1 March is 03:00 UTC on 2 March
    {"order_id": "D", "status": "delivered", "amount": "7", "placed_at": "2026-03-01T22:00:00-05:00",
     "updated_at": "2026-03-05T10:00:00Z"},
    # E: paid on 1 March as well; 0.10 + 0.20 must be exactly 0.30
    {"order_id": "E", "status": "paid", "amount": "0.20", "placed_at": "2026-03-01T10:00:00Z",
     "updated_at": "2026-03-01T10:01:00Z"},
]


def test_current_versions_by_hand():
    current = current_versions(HAND_ROWS)
    assert {k: (v["status"], v["amount"]) for k, v in current.items()} == {
        "A": ("shipped", "10"), "B": ("paid", "0.10"), "C": ("refunded", "0.05"), "D": ("delivered", "7"),
        "E": ("paid", "0.20"),
    }
    assert current["C"] is HAND_ROWS[5]
    # datetimes work too (naive = UTC)
    typed = [{"order_id": "X", "updated_at": datetime(2026, 3, 1, 12)},
             {"order_id": "X", "updated_at": datetime(2026, 3, 1, 13, tzinfo=UTC) + timedelta(microseconds=1)}]
    assert current_versions(typed)["X"] is typed[1]


def test_expected_orders_daily_by_hand():
    assert expected_orders_daily(HAND_ROWS) == [
        {"order_date": date(2026, 3, 1), "status": "paid", "orders": 2, "amount": Decimal("0.30")},
        {"order_date": date(2026, 3, 1), "status": "refunded", "orders": 1, "amount": Decimal("0.05")},
        {"order_date": date(2026, 3, 1), "status": "shipped", "orders": 1, "amount": Decimal("10.00")},
        {"order_date": date(2026, 3, 2), "status": "delivered", "orders": 1, "amount": Decimal("7.00")},
    ]
    assert expected_orders_daily([]) == []


def test_references_on_a_sample(defective):
    out, result, records = defective
    rows = valid_rows(out)
    assert len(rows) == result.rows_written - len(result.defects)
    daily = expected_orders_daily(rows)
    assert sum(d["orders"] for d in daily) == result.orders == len(current_versions(rows))
    # the same answer from this file's own typed reading of the sample
    latest: dict[str, dict] = {}
    for t in (r["typed"] for r in records if r["reason"] is None):
        if t["order_id"] not in latest or t["updated_at"] > latest[t["order_id"]]["updated_at"]:
            latest[t["order_id"]] = t
    mine: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0)])
    for t in latest.values():
        acc = mine[(t["placed_at"].date(), t["status"])]
        acc[0] += 1
        acc[1] += t["amount"]
    assert {(d["order_date"], d["status"]): (d["orders"], d["amount"]) for d in daily} == \
        {k: (n, a.quantize(Decimal("0.01"))) for k, (n, a) in mine.items()}


@pytest.mark.parametrize("kwargs", [{"orders": 0}, {"days": 0}, {"defect_rate": -0.1}, {"defect_rate": 1.5},
                                    {"rows_per_part": 0}])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_orders_sample(tmp_path, **kwargs)


def test_parts_split_a_day(tmp_path):
    result = generate_orders_sample(tmp_path, orders=600, days=2, rows_per_part=500)
    names = [p.relative_to(tmp_path).as_posix() for p in result.files]
    assert "orders/2026-03-01/part-0001.csv" in names and names == sorted(names)
    assert all(p.read_bytes().split(b"\n", 1)[0] == ",".join(RULES).encode() for p in result.files)
