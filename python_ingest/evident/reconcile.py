"""`evident reconcile`: prove the DuckDB fast path agrees with authoritative Postgres, and say where it does not.

    report = reconcile([duck, pg], run_id)            # tables: raw.app_events and the published marts
    print(report.render())                             # a table of what differs, per partition and key
    report.success                                     # GX suite verdict when validated, else own verdict

How (nothing is copied wholesale into Python):

1. Per table, one scan per engine (both engines at once, in two threads) computes per partition — the UTC
   date of event_ts / session_start, or metric_date — the row count, exact sums of the measures and the sum
   of per-row hashes over the canonical row text (evident.fingerprint: md5 of the columns joined with U+001F,
   NULL as U+0001, fixed-scale decimals, ISO timestamps at µs). Equal partitions are done.
2. A partition that differs is narrowed by key-hash prefix: each engine groups the partition's rows by the
   first hex digits of md5(canonical key text) — pure hex, so no collation can make the engines disagree on
   which rows a range holds — and returns count + hash sum per bucket (at most 16^3 buckets per query). Only
   buckets that differ are split further, one more level of digits at a time, until every differing bucket
   holds at most LEAF_ROWS rows on either side. All differing partitions of a table are narrowed together
   (bucket id = '<date>:<hex prefix>'), so a level costs one query per engine however many dates differ.
3. Only the rows of those leaf buckets are fetched from both engines (each column as its canonical text) and
   compared per key: missing_in_duckdb, missing_in_postgres, different (with the differing columns), or
   duplicated_in_<engine> when one engine holds more copies of a key. At most MAX_KEYS keys are kept per
   partition (the rest is summarised as truncated) and the descent stops once that many were found.
4. A table may declare a tolerance for its measures: a partition whose only differences are measure values
   within it is `mismatched` but `within_threshold`, which the Great Expectations suite
   (expectations/gx/expectations/reconciliation.json, validated against the report rows as a small pandas
   DataFrame) accepts. Any other mismatch fails the suite, which is what fails the command (exit 1).
5. The report rows go to `evident.reconciliations` in every engine (created if missing).

Cost: the partition pass is one scan per engine, dominated on Postgres by md5 of each row's canonical text
(~1.5–2 µs per row per core here, against ~0.1 µs for a bare count/sum); narrowing and fetching filter on the
partition column's own values, so an index on it (Postgres) makes them, and `--date-from/--date-to`, cheap.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Sequence

from . import faults
from .batches import advance, batches_in, utcnow
from .engines import Engine
from .errors import ConfigError, DataRejected
from .retry import with_retry
from .fingerprint import NULL_MARK, SEP, Column, column_text_sql, grouped_fingerprints, postgres_session_setup, row_hash_sql

REPO_ROOT = Path(__file__).resolve().parents[2]
SUITE_PATH = REPO_ROOT / "expectations" / "gx" / "expectations" / "reconciliation.json"
SUITE_NAME = "reconciliation"

LEAF_ROWS = 64  # a differing bucket this small (on both sides) is fetched and compared row by row
MAX_DIGITS_PER_LEVEL = 3  # at most 16^3 buckets returned by one narrowing query
MAX_KEYS = 50  # differing keys kept per partition (differing_keys JSON is capped at this)
NULL_TEXT = "\x01"


# ------------------------------------------------------------------------------------------- table specs

@dataclass(frozen=True)
class TableSpec:
    name: str  # schema-qualified
    columns: tuple[Column, ...]  # compared columns (canonical text, in this order)
    key: tuple[str, ...]
    partition_column: str  # partition = its (UTC) date
    measures: tuple[str, ...]  # decimal columns summed exactly per partition
    measure_tolerance: Decimal = Decimal(0)  # max |duckdb - postgres| per measure value accepted

    @property
    def short_name(self) -> str:
        return self.name.split(".", 1)[1]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def partition_kind(self) -> str:
        return self.column(self.partition_column).kind


def _table_specs() -> dict[str, TableSpec]:
    from .publish import MARTS

    marts = {m.name: m for m in MARTS}
    raw = TableSpec(
        "raw.app_events",
        # The data columns: batch ids, land_seq and times describe how a row was landed in each engine.
        (Column("idempotency_key", "text"), Column("event_id", "text"), Column("user_id", "int"),
         Column("event_ts", "timestamp"), Column("event_type", "text"), Column("value", "decimal"),
         Column("app_version", "text"), Column("properties", "text"), Column("payload_sha256", "text")),
        ("idempotency_key",), "event_ts", ("value",))
    sessions = TableSpec("published.fct_sessions", marts["fct_sessions"].columns, marts["fct_sessions"].key,
                         "session_start", ("revenue",))
    # session_conversion_rate is rounded to 6 places in each engine: one unit of that rounding is accepted.
    metrics = TableSpec("published.fct_daily_metrics", marts["fct_daily_metrics"].columns,
                        marts["fct_daily_metrics"].key, "metric_date", ("metric_value",),
                        measure_tolerance=Decimal("0.000001"))
    return {s.name: s for s in (raw, sessions, metrics)}


TABLES = _table_specs()


def resolve_tables(names: Sequence[str] | None) -> list[TableSpec]:
    """Table specs by full or short name (`fct_sessions`); all of them when `names` is empty."""
    if not names:
        return list(TABLES.values())
    specs = []
    for name in names:
        match = [s for s in TABLES.values() if name in (s.name, s.short_name)]
        if not match:
            known = ", ".join(s.name for s in TABLES.values())
            raise ConfigError(f"unknown table {name!r} for reconcile (known: {known})")
        specs.append(match[0])
    return specs


# ------------------------------------------------------------------------------------------- results

@dataclass
class KeyDiff:
    key: str
    kind: str  # missing_in_duckdb | missing_in_postgres | different | duplicated_in_duckdb | duplicated_in_postgres
    columns: list[str] = field(default_factory=list)
    duckdb: dict | None = None  # the differing columns' canonical text (None = SQL NULL)
    postgres: dict | None = None

    def as_dict(self) -> dict:
        out: dict[str, Any] = {"key": self.key, "kind": self.kind}
        if self.columns:
            out["columns"] = self.columns
        if self.duckdb is not None or self.postgres is not None:
            out["duckdb"], out["postgres"] = self.duckdb, self.postgres
        return out


@dataclass
class PartitionResult:
    table: str
    partition: str
    duckdb_rows: int
    postgres_rows: int
    duckdb_sums: dict
    postgres_sums: dict
    status: str  # matched | mismatched
    threshold: Decimal = Decimal(0)
    diffs: list[KeyDiff] = field(default_factory=list)
    truncated: bool = False  # more differing keys exist than were kept
    max_measure_delta: Decimal = Decimal(0)
    within_threshold: bool = False  # mismatched only by measure values within the table's tolerance
    rows_fetched: int = 0

    @property
    def acceptable(self) -> bool:
        return self.status == "matched" or self.within_threshold

    def differing_keys_json(self) -> str:
        keys = [d.as_dict() for d in self.diffs[:MAX_KEYS]]
        return json.dumps({"keys": keys, "truncated": self.truncated}, default=str, ensure_ascii=False)


@dataclass
class Validation:
    success: bool
    failures: list[str]
    engine: str = "great_expectations"


@dataclass
class ReconcileReport:
    run_id: str
    status: str  # matched | mismatched | skipped
    reason: str = ""
    tables: list[str] = field(default_factory=list)
    partitions: list[PartitionResult] = field(default_factory=list)
    date_from: date | None = None
    date_to: date | None = None
    rows_fetched: int = 0  # rows brought into Python to pinpoint differences
    queries: int = 0
    elapsed_s: float = 0.0
    checked_at: datetime = field(default_factory=utcnow)
    validation: Validation | None = None

    @property
    def mismatched(self) -> list[PartitionResult]:
        return [p for p in self.partitions if p.status != "matched"]

    @property
    def success(self) -> bool:
        if self.status == "skipped":
            return True
        if self.validation is not None:
            return self.validation.success
        return all(p.acceptable for p in self.partitions)

    def rows(self) -> list[dict]:
        """One row per (table, partition): what evident.reconciliations stores and the GX suite validates."""
        if self.status == "skipped":
            return [{"run_id": self.run_id, "table_name": "*", "partition": "*", "duckdb_rows": 0,
                     "postgres_rows": 0, "status": "skipped", "differing_keys": json.dumps({"reason": self.reason}),
                     "threshold": Decimal(0), "max_measure_delta": Decimal(0), "within_threshold": False,
                     "checked_at": self.checked_at}]
        return [{"run_id": self.run_id, "table_name": p.table, "partition": p.partition,
                 "duckdb_rows": p.duckdb_rows, "postgres_rows": p.postgres_rows, "status": p.status,
                 "differing_keys": p.differing_keys_json() if p.status != "matched" else None,
                 "threshold": p.threshold, "max_measure_delta": p.max_measure_delta,
                 "within_threshold": p.within_threshold, "checked_at": self.checked_at}
                for p in self.partitions]

    def summary(self) -> dict:
        return {"status": self.status, "success": self.success, "reason": self.reason or None,
                "tables": self.tables, "partitions": len(self.partitions),
                "mismatched_partitions": [f"{p.table}/{p.partition}" for p in self.mismatched][:20],
                "rows_fetched": self.rows_fetched, "queries": self.queries, "elapsed_s": self.elapsed_s,
                "validation_failures": self.validation.failures if self.validation else None}

    def render(self) -> str:
        if self.status == "skipped":
            return f"reconciliation skipped: {self.reason}"
        window = ""
        if self.date_from or self.date_to:
            window = f" [{self.date_from or '…'} .. {self.date_to or '…'}]"
        lines = [f"reconciliation {self.run_id}{window}: "
                 f"{'OK' if self.success else 'FAILED'} — {len(self.partitions)} partition(s) in "
                 f"{len(self.tables)} table(s), {len(self.mismatched)} mismatched; "
                 f"{self.rows_fetched} row(s) fetched to pinpoint, {self.elapsed_s:.2f} s"]
        for table in self.tables:
            parts = [p for p in self.partitions if p.table == table]
            bad = [p for p in parts if p.status != "matched"]
            lines.append(f"  {table}: {len(parts) - len(bad)}/{len(parts)} partitions matched, "
                         f"{sum(p.duckdb_rows for p in parts)} rows in duckdb, "
                         f"{sum(p.postgres_rows for p in parts)} in postgres")
        if self.mismatched:
            header = ("table", "partition", "duckdb", "postgres", "key", "kind", "columns / values")
            body = []
            for p in self.mismatched:
                note = (f" (within threshold {p.threshold}: max delta {p.max_measure_delta})"
                        if p.within_threshold else "")
                if not p.diffs:
                    body.append((p.table, p.partition, str(p.duckdb_rows), str(p.postgres_rows), "-",
                                 "fingerprint differs" + note, ""))
                for i, d in enumerate(p.diffs[:MAX_KEYS]):
                    values = "; ".join(f"{c}: duckdb={_show((d.duckdb or {}).get(c))} "
                                       f"postgres={_show((d.postgres or {}).get(c))}" for c in d.columns)
                    first = i == 0
                    body.append((p.table if first else "", p.partition if first else "",
                                 str(p.duckdb_rows) if first else "", str(p.postgres_rows) if first else "",
                                 d.key, d.kind + (note if first else ""), values))
                if p.truncated:
                    body.append(("", "", "", "", "…", f"more differing keys (first {len(p.diffs)} shown)", ""))
            widths = [min(66, max(len(h), *(len(r[i]) for r in body))) for i, h in enumerate(header[:-1])]
            fmt = lambda r: "  ".join(_cut(v, w).ljust(w) for v, w in zip(r[:-1], widths)) + "  " + r[-1]
            lines += ["", fmt(header), fmt(tuple("-" * w for w in widths) + ("-" * 16,))]
            lines += [fmt(r) for r in body]
        if self.validation and self.validation.failures:
            lines += ["", "failed expectations:"] + [f"  - {f}" for f in self.validation.failures]
        return "\n".join(lines)


def _show(value: str | None) -> str:
    return "NULL" if value is None else repr(value)


def _cut(value: str, width: int) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


# ------------------------------------------------------------------------------------------- SQL pieces

def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _key_text_sql(engine: str, spec: TableSpec) -> str:
    return f" || {SEP} || ".join(column_text_sql(engine, spec.column(k)) for k in spec.key)


def _bucket_sql(engine: str, spec: TableSpec, digits: int) -> str:
    return f"substr(md5({_key_text_sql(engine, spec)}), 1, {digits})"


def _window(spec: TableSpec, date_from: date | None, date_to: date | None) -> tuple[str, list]:
    """Predicate on the partition column's own values (index-friendly) for a date window, both ends inclusive."""
    col, clauses, params = _ident(spec.partition_column), [], []
    if spec.partition_kind == "timestamp":
        if date_from:
            clauses.append(f"{col} >= %s")
            params.append(datetime.combine(date_from, datetime.min.time()))
        if date_to:
            clauses.append(f"{col} < %s")
            params.append(datetime.combine(date_to + timedelta(days=1), datetime.min.time()))
    else:
        if date_from:
            clauses.append(f"{col} >= %s")
            params.append(date_from)
        if date_to:
            clauses.append(f"{col} <= %s")
            params.append(date_to)
    return " and ".join(clauses), params


def _partition_sql(spec: TableSpec) -> str:
    return f"cast({_ident(spec.partition_column)} as date)"


class _Sides:
    """Runs the same logical query on both engines at once (DuckDB and psycopg release the GIL)."""

    def __init__(self, duck: Engine, pg: Engine):
        self.duck, self.pg = duck, pg
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="reconcile")
        self.queries = 0

    def both(self, fn):
        """fn(engine) on both engines concurrently → (duckdb result, postgres result)."""
        self.queries += 2
        pg_future = self.pool.submit(self._pg_call, fn)
        duck_result = fn(self.duck)
        return duck_result, pg_future.result()

    def _pg_call(self, fn):
        # Planner settings for these aggregate scans (the partition expression's group count is unknown to
        # Postgres, which otherwise picks a serial sort-based plan), scoped to one transaction.
        with self.pg.transaction():
            for setting in ("jit = off", "enable_sort = off", "work_mem = '256MB'", "parallel_setup_cost = 0",
                            "parallel_tuple_cost = 0"):
                self.pg.execute(f"set local {setting}")
            return fn(self.pg)

    def close(self):
        self.pool.shutdown(wait=True)


# ------------------------------------------------------------------------------------------- reconcile

def _split_engines(engines: Sequence[Engine]) -> tuple[Engine | None, Engine | None]:
    duck = next((e for e in engines if e.name == "duckdb"), None)
    pg = next((e for e in engines if e.name == "postgres"), None)
    return duck, pg


def _to_date(value) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def reconcile(engines: Sequence[Engine], run_id: str, *, tables: Sequence[str] | None = None,
              date_from: date | str | None = None, date_to: date | str | None = None,
              max_keys: int = MAX_KEYS, leaf_rows: int = LEAF_ROWS) -> ReconcileReport:
    """Compare the tables between the DuckDB and the Postgres engine; see the module docstring."""
    duck, pg = _split_engines(engines)
    if duck is None or pg is None:
        missing = "Postgres" if pg is None else "DuckDB"
        return skipped_report(run_id, f"{missing} is not configured (EVIDENT_POSTGRES_DSN unset)"
                              if pg is None else f"{missing} is not configured")
    try:
        date_from, date_to = _to_date(date_from), _to_date(date_to)
    except ValueError as exc:
        raise ConfigError(f"reconcile: dates are written YYYY-MM-DD ({exc})") from None
    if date_from and date_to and date_from > date_to:
        raise ConfigError(f"reconcile: --date-from {date_from} is after --date-to {date_to}")
    specs = resolve_tables(tables)
    started = time.perf_counter()
    report = ReconcileReport(run_id, "matched", tables=[s.name for s in specs], date_from=date_from,
                             date_to=date_to)
    for engine in (duck, pg):
        postgres_session_setup(engine)
    sides = _Sides(duck, pg)
    try:
        for spec in specs:
            report.partitions += _reconcile_table(sides, spec, date_from, date_to, max_keys, leaf_rows)
    finally:
        sides.close()
    report.queries = sides.queries
    report.rows_fetched = sum(p.rows_fetched for p in report.partitions)
    report.status = "mismatched" if report.mismatched else "matched"
    report.elapsed_s = round(time.perf_counter() - started, 3)
    return report


def skipped_report(run_id: str, reason: str) -> ReconcileReport:
    """The report when reconciliation cannot run (only DuckDB configured): skipped, with the reason."""
    return ReconcileReport(run_id, "skipped", reason=reason)


def _table_exists(engine: Engine, table: str) -> bool:
    schema, name = table.split(".", 1)
    row = engine.fetchone("select count(*) from information_schema.tables where table_schema = %s and table_name = %s"
                          + (" and table_catalog = current_database()" if engine.name == "duckdb" else ""),
                          [schema, name])
    return bool(row and row[0])


def _reconcile_table(sides: _Sides, spec: TableSpec, date_from, date_to, max_keys, leaf_rows) -> list[PartitionResult]:
    where, params = _window(spec, date_from, date_to)
    exists = (_table_exists(sides.duck, spec.name), _table_exists(sides.pg, spec.name))
    if not all(exists):
        absent = [n for n, ok in zip(("duckdb", "postgres"), exists) if not ok]
        if len(absent) == 2:
            return []
        present = sides.duck if exists[0] else sides.pg
        rows = present.fetchone(f"select count(*) from {spec.name}" + (f" where {where}" if where else ""), params)[0]
        return [PartitionResult(spec.name, "*", rows if exists[0] else 0, rows if exists[1] else 0, {}, {},
                                "mismatched", spec.measure_tolerance, [KeyDiff("*", f"table_missing_in_{absent[0]}")])]
    duck_fp, pg_fp = sides.both(lambda e: grouped_fingerprints(
        e, spec.name, list(spec.columns), _partition_sql(spec), spec.measures, where, params))
    results = []
    for part in sorted(set(duck_fp) | set(pg_fp), key=str):
        d, p = duck_fp.get(part), pg_fp.get(part)
        d_rows, p_rows = (d.rows if d else 0), (p.rows if p else 0)
        d_sums = dict(zip(spec.measures, d.measure_sums)) if d else {}
        p_sums = dict(zip(spec.measures, p.measure_sums)) if p else {}
        same = (d is not None and p is not None and d.rows == p.rows and d.row_hash_sum == p.row_hash_sum
                and all(_num_eq(d_sums[m], p_sums[m]) for m in spec.measures))
        results.append(PartitionResult(spec.name, str(part), d_rows, p_rows, d_sums, p_sums,
                                       "matched" if same else "mismatched", spec.measure_tolerance))
    _pinpoint(sides, spec, [r for r in results if r.status != "matched"], max_keys, leaf_rows)
    return results


def _num_eq(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and Decimal(a) == Decimal(b))


def _digits_for(rows: int, leaf_rows: int) -> int:
    """Hex digits to add so that buckets hold about leaf_rows/4 rows (capped per query)."""
    if rows <= leaf_rows:
        return 1
    return max(1, min(MAX_DIGITS_PER_LEVEL, math.ceil(math.log(rows / max(1, leaf_rows // 4), 16))))


def _bucket_id_sql(engine: str, spec: TableSpec, digits: int) -> str:
    """'<partition date>:<first `digits` hex digits of md5(key text)>' — one bucket of one partition."""
    part = f"cast({_partition_sql(spec)} as varchar) || ':'"
    return f"{part} || {_bucket_sql(engine, spec, digits)}" if digits else part


def _in_list(values) -> str:
    return "(" + ", ".join(["%s"] * len(values)) + ")"


def _pinpoint(sides: _Sides, spec: TableSpec, results: list[PartitionResult], max_keys: int, leaf_rows: int) -> None:
    """Narrow the differing partitions of one table by key-hash prefix, then compare the rows of the few leaf
    buckets. All differing partitions of the table are narrowed together: one query per engine per level."""
    if not results:
        return
    by_part = {r.partition: r for r in results}
    dates = sorted(date.fromisoformat(p) for p in by_part)
    range_where, range_params = _window(spec, dates[0], dates[-1])
    frontier = {f"{p}:": (r.duckdb_rows, r.postgres_rows) for p, r in by_part.items()}  # bucket → row counts
    leaves: dict[str, list[str]] = {p: [] for p in by_part}
    truncated: set[str] = set()
    length = 0
    while frontier:
        big: dict[str, tuple[int, int]] = {}
        for bucket, counts in sorted(frontier.items()):
            part = bucket.split(":", 1)[0]
            if max(counts) <= leaf_rows:
                leaves[part].append(bucket)
            else:
                big[bucket] = counts
        for bucket in list(big):
            part = bucket.split(":", 1)[0]
            if len(leaves[part]) >= max_keys:  # enough to show: do not open more of this partition
                truncated.add(part)
                del big[bucket]
        if not big:
            break
        new_length = length + _digits_for(max(max(n) for n in big.values()), leaf_rows)

        def level(engine: Engine, big=tuple(big), length=length, new_length=new_length):
            sql = (f"select {_bucket_id_sql(engine.name, spec, new_length)} as b, count(*), "
                   f"coalesce(sum({row_hash_sql(engine.name, list(spec.columns))}), 0) from {spec.name} "
                   f"where {range_where} and {_bucket_id_sql(engine.name, spec, length)} in {_in_list(big)} "
                   f"group by 1")
            return {r[0]: (int(r[1]), int(r[2])) for r in engine.fetchall(sql, list(range_params) + list(big))}

        d_buckets, p_buckets = sides.both(level)
        frontier = {}
        for bucket in sorted(set(d_buckets) | set(p_buckets)):
            if d_buckets.get(bucket) == p_buckets.get(bucket):
                continue
            part = bucket.split(":", 1)[0]
            # Each differing bucket holds at least one differing key: open no more than can be kept.
            if len(leaves[part]) + sum(1 for b in frontier if b.startswith(part + ":")) >= max_keys:
                truncated.add(part)
                continue
            frontier[bucket] = (d_buckets.get(bucket, (0, 0))[0], p_buckets.get(bucket, (0, 0))[0])
        length = new_length
    all_leaves = [b for bs in leaves.values() for b in bs[:max_keys]]
    if all_leaves:
        _compare_rows(sides, spec, range_where, range_params, all_leaves, by_part)
    for part, result in by_part.items():
        result.truncated = result.truncated or part in truncated or len(result.diffs) > max_keys
        result.diffs = result.diffs[:max_keys]
        _judge(spec, result)


def _compare_rows(sides: _Sides, spec: TableSpec, range_where: str, range_params: list, buckets: list[str],
                  by_part: dict[str, PartitionResult]) -> None:
    by_length: dict[int, list[str]] = {}
    for b in buckets:
        by_length.setdefault(len(b.split(":", 1)[1]), []).append(b)
    names = [c.name for c in spec.columns]

    def fetch(engine: Engine):
        rows = []
        cols = ", ".join(column_text_sql(engine.name, c) for c in spec.columns)
        for length, group in by_length.items():
            rows += engine.fetchall(
                f"select cast({_partition_sql(spec)} as varchar), {_key_text_sql(engine.name, spec)}, {cols} "
                f"from {spec.name} where {range_where} and {_bucket_id_sql(engine.name, spec, length)} in "
                f"{_in_list(group)}", list(range_params) + group)
        return rows

    d_rows, p_rows = sides.both(fetch)
    grouped: dict[str, tuple[dict, dict]] = {p: ({}, {}) for p in by_part}
    for rows, side in ((d_rows, 0), (p_rows, 1)):
        for row in rows:
            part = str(row[0])
            if part not in grouped:
                continue
            by_part[part].rows_fetched += 1
            grouped[part][side].setdefault(row[1], []).append(tuple(None if v == NULL_TEXT else v for v in row[2:]))
    for part, (d_by_key, p_by_key) in grouped.items():
        by_part[part].diffs = _diff_keys(names, d_by_key, p_by_key)


def _diff_keys(names: list[str], d_by_key: dict, p_by_key: dict) -> list[KeyDiff]:
    diffs = []
    for key in sorted(set(d_by_key) | set(p_by_key)):
        d, p = sorted(d_by_key.get(key, []), key=repr), sorted(p_by_key.get(key, []), key=repr)
        if d == p:
            continue
        shown = key.replace("\x1f", " | ")
        if not d:
            diffs.append(KeyDiff(shown, "missing_in_duckdb"))
        elif not p:
            diffs.append(KeyDiff(shown, "missing_in_postgres"))
        elif len(d) != len(p):
            diffs.append(KeyDiff(shown, "duplicated_in_duckdb" if len(d) > len(p) else "duplicated_in_postgres"))
        else:
            for dr, pr in zip(d, p):
                cols = [n for n, a, b in zip(names, dr, pr) if a != b]
                if cols:
                    diffs.append(KeyDiff(shown, "different", cols, {c: dr[names.index(c)] for c in cols},
                                         {c: pr[names.index(c)] for c in cols}))
    return diffs


def _judge(spec: TableSpec, result: PartitionResult) -> None:
    """Measure deltas, and whether the partition's mismatch is only measure values within the tolerance."""
    deltas = []
    measure_only = bool(result.diffs) and not result.truncated
    for d in result.diffs:
        if d.kind != "different" or not set(d.columns) <= set(spec.measures):
            measure_only = False
            continue
        for c in d.columns:
            try:
                deltas.append(abs(Decimal(d.duckdb[c]) - Decimal(d.postgres[c])))
            except (InvalidOperation, TypeError):
                measure_only = False
    result.max_measure_delta = max(deltas, default=Decimal(0))
    result.within_threshold = (measure_only and result.duckdb_rows == result.postgres_rows
                               and result.max_measure_delta <= spec.measure_tolerance)


# ------------------------------------------------------------------------------------------- storage

RECONCILIATIONS_DDL = """create table if not exists evident.reconciliations (
    run_id varchar not null, table_name varchar not null, partition varchar not null,
    duckdb_rows bigint not null, postgres_rows bigint not null, status varchar not null,
    differing_keys varchar, threshold decimal(38,6) not null, max_measure_delta decimal(38,6) not null,
    within_threshold boolean not null, checked_at timestamp not null)"""
STORED_COLUMNS = ("run_id", "table_name", "partition", "duckdb_rows", "postgres_rows", "status", "differing_keys",
                  "threshold", "max_measure_delta", "within_threshold", "checked_at")


def store_report(engines: Sequence[Engine], report: ReconcileReport) -> None:
    """Write the report rows to evident.reconciliations in every engine (a rerun of the run id replaces them)."""
    rows = [tuple(str(r[c]) if c in ("threshold", "max_measure_delta") else r[c] for c in STORED_COLUMNS)
            for r in report.rows()]
    for engine in engines:
        with engine.transaction():
            engine.execute("create schema if not exists evident")
            engine.execute(RECONCILIATIONS_DDL)
            engine.execute("delete from evident.reconciliations where run_id = %s", [report.run_id])
            placeholders = "(" + ", ".join(["%s"] * len(STORED_COLUMNS)) + ")"
            for start in range(0, len(rows), 200):
                chunk = rows[start:start + 200]
                engine.execute(f"insert into evident.reconciliations ({', '.join(STORED_COLUMNS)}) values "
                               + ", ".join([placeholders] * len(chunk)), [v for r in chunk for v in r])


# ------------------------------------------------------------------------------------------- GX suite

def suite_definition() -> dict:
    """The reconciliation suite (also stored, in GX's JSON form, at SUITE_PATH)."""
    return {
        "name": SUITE_NAME,
        "meta": {"notes": "Validates evident.reconcile report rows: every partition matched, or mismatched only "
                          "by measure values within the table's declared threshold."},
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "table_name"}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "partition"}},
            {"type": "expect_column_values_to_be_in_set",
             "kwargs": {"column": "status", "value_set": ["matched", "mismatched", "skipped"]}},
            # A partition is accepted when it matched or its mismatch is within the declared threshold.
            {"type": "expect_column_values_to_be_in_set",
             "kwargs": {"column": "acceptance", "value_set": ["matched", "within_threshold", "skipped"]}},
            {"type": "expect_column_pair_values_a_to_be_greater_than_b",
             "kwargs": {"column_A": "threshold", "column_B": "max_measure_delta", "or_equal": True}},
        ],
    }


def _report_frame(report: ReconcileReport):
    import pandas as pd

    rows = []
    for r in report.rows():
        acceptance = ("skipped" if r["status"] == "skipped" else "matched" if r["status"] == "matched"
                      else "within_threshold" if r["within_threshold"] else "mismatched")
        rows.append({"table_name": r["table_name"], "partition": r["partition"], "status": r["status"],
                     "acceptance": acceptance, "duckdb_rows": r["duckdb_rows"], "postgres_rows": r["postgres_rows"],
                     "threshold": float(r["threshold"]), "max_measure_delta": float(r["max_measure_delta"])})
    columns = ["table_name", "partition", "status", "acceptance", "duckdb_rows", "postgres_rows", "threshold",
               "max_measure_delta"]
    return pd.DataFrame(rows, columns=columns)


def load_suite_json(path: Path = SUITE_PATH) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else suite_definition()


def validate_report(report: ReconcileReport, suite_path: Path = SUITE_PATH) -> Validation:
    """Validate the report rows with the GX suite in an ephemeral context; sets and returns report.validation."""
    import logging
    import warnings

    import great_expectations as gx  # lazy: seconds to import
    from great_expectations.core.expectation_suite import ExpectationSuite

    if report.status == "skipped":
        report.validation = Validation(True, [])
        return report.validation
    frame = _report_frame(report)
    if frame.empty:  # nothing to compare in the window: nothing can disagree
        report.validation = Validation(True, [])
        return report.validation
    for name in ("great_expectations", "great_expectations.data_context.types.base"):  # the latter sets INFO
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        context = gx.get_context(mode="ephemeral")
        with contextlib.suppress(Exception):  # no progress bars on stderr
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context.variables.progress_bars = ProgressBarsConfig(globally=False)
        spec = load_suite_json(suite_path)
        suite = context.suites.add(ExpectationSuite(
            name=spec["name"], meta=spec.get("meta") or {},
            expectations=[{k: v for k, v in e.items() if k in ("type", "kwargs", "meta")}
                          for e in spec["expectations"]]))
        source = context.data_sources.add_pandas("reconciliation")
        asset = source.add_dataframe_asset("report")
        batch = asset.add_batch_definition_whole_dataframe("rows").get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format="SUMMARY")
    failures = []
    for r in result.results:
        if r.success:
            continue
        cfg = r.expectation_config
        detail = r.result or {}
        sample = detail.get("partial_unexpected_list") or detail.get("partial_unexpected_index_list") or []
        errors = [v.get("exception_message") for v in (r.exception_info or {}).values()
                  if isinstance(v, dict) and v.get("raised_exception")]
        kwargs = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
        failures.append(f"{cfg.type}({json.dumps(kwargs, default=str, sort_keys=True)}): "
                        f"{detail.get('unexpected_count', '?')} unexpected"
                        + (f", e.g. {sample[:5]}" if sample else "") + (f"; error: {errors[0]}" if errors else ""))
    report.validation = Validation(bool(result.success), failures)
    return report.validation


# ------------------------------------------------------------------------------------------- the step

class ReconciliationFailed(DataRejected):
    reason = "reconciliation_mismatch"

    def __init__(self, report: ReconcileReport):
        super().__init__(report.render())
        self.report = report


def mark_reconciled(engines: Sequence[Engine], report: ReconcileReport) -> dict[str, int]:
    """Move published batches to `reconciled` when every partition they touched matched in every table.

    Only a full check counts: all tables compared, and each of the batch's event dates inside the window.
    """
    moved: dict[str, int] = {}
    if report.status == "skipped" or set(report.tables) != set(TABLES):
        return moved
    bad_dates = {p.partition for p in report.partitions if not p.acceptable}
    if "*" in bad_dates:
        return moved
    for engine in engines:
        ok = []
        for batch_id in batches_in(engine, "published"):
            row = engine.fetchone("select event_dates from evident.batches where batch_id = %s", [batch_id])
            dates = [d for d in ((row[0] or "").split(",") if row else []) if d]
            inside = all((report.date_from is None or date.fromisoformat(d) >= report.date_from)
                         and (report.date_to is None or date.fromisoformat(d) <= report.date_to) for d in dates)
            if inside and not (set(dates) & bad_dates):
                ok.append(batch_id)
        moved[engine.name] = advance(engine, ok, "published", "reconciled", report.run_id) if ok else 0
        faults.point(f"reconcile.{engine.name}.after_mark")
    return moved


def run_reconcile(ctx, *, tables: Sequence[str] | None = None, date_from=None, date_to=None,
                  validate: bool = True, raise_on_failure: bool = True) -> ReconcileReport:
    """The `evident reconcile` step inside a run (pipeline.RunContext): compare, store, validate, advance batches.

    Without Postgres the report is `skipped` (stored in DuckDB) and nothing fails. A failed suite raises
    ReconciliationFailed (exit 1), whose message is the rendered report.
    """
    faults.point("reconcile.before")
    duck, pg = _split_engines(ctx.engines)
    if pg is None or duck is None:
        report = skipped_report(ctx.run_id, "Postgres is not configured (EVIDENT_POSTGRES_DSN unset): there is no "
                                            "second engine to reconcile DuckDB against")
    else:
        report = with_retry(lambda: reconcile(ctx.engines, ctx.run_id, tables=tables, date_from=date_from,
                                              date_to=date_to), what="reconciling DuckDB with Postgres")
        if validate:
            validate_report(report)
    with_retry(lambda: store_report(ctx.engines, report), what="storing the reconciliation report")
    faults.point("reconcile.after_store")
    moved = mark_reconciled(ctx.engines, report) if report.success else {}
    ctx.detail["reconcile"] = {**report.summary(), "batches_reconciled": moved}
    if not report.success:
        ctx.status = "failed"
        if raise_on_failure:
            raise ReconciliationFailed(report)
    return report


def reconcile_step(ctx, *, tables: Sequence[str] | None = None, date_from=None, date_to=None) -> list[str]:
    """`evident run`'s last step (evident.runner): run_reconcile, summarised as lines for the run summary.

    Skipped (and says why) without Postgres; a mismatch outside the declared thresholds raises
    ReconciliationFailed (exit 1) carrying the rendered report.
    """
    report = run_reconcile(ctx, tables=tables, date_from=date_from, date_to=date_to)
    if report.status == "skipped":
        return [f"reconcile: skipped — {report.reason}"]
    moved = ctx.detail.get("reconcile", {}).get("batches_reconciled") or {}
    lines = report.render().splitlines()
    lines[0] = lines[0].replace(f"reconciliation {report.run_id}", "reconcile", 1)
    if moved:
        lines.append("  batches now reconciled: " + ", ".join(f"{e} {n}" for e, n in sorted(moved.items())))
    return [line for line in lines if line.strip()]
