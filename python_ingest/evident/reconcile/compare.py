"""`evident reconcile`: prove the DuckDB fast path agrees with authoritative Postgres, and say where it does not.

    report = reconcile([duck, pg], run_id)            # every raw source and every published model
    print(report.render())                             # a table of what differs, per partition and key
    report.success                                     # GX suite verdict when validated, else own verdict

How (nothing is copied wholesale into Python; what costs is hashing rows, so only changed partitions are):

1. Each engine brings its fingerprint of every partition up to date (evident.reconcile.stored, both engines at
   once in two threads): count, exact measure sums and the sum of per-row hashes over the canonical row text
   (evident.fingerprint: md5 of the columns joined with U+001F, NULL as U+0001, fixed-scale decimals, ISO
   timestamps at µs). It keeps them from the last time it hashed each partition and hashes again only those
   written to since: Postgres records them by trigger (and checks that the rest of the table still totals what
   was hashed), DuckDB compares each partition's count and a hash of its rows with the stored ones.
2. `full=True` (`--full`), or an engine that never hashed the table, hashes every partition in one scan.
3. A partition matches when counts, measure sums and fingerprints are equal. One that differs is narrowed by
   key-hash prefix: each engine groups the partition's rows by the first hex digits of md5(canonical key text)
   — pure hex, so no collation can make the engines disagree on which rows a range holds — and returns
   count + hash sum per bucket (at most 16^3 buckets per query). Only buckets that differ are split further
   until every differing bucket holds at most LEAF_ROWS rows on either side; all differing partitions of a
   table are narrowed together (bucket id = '<date>:<hex prefix>').
4. Only the rows of those leaf buckets are fetched from both engines (each column as its canonical text) and
   compared per key: missing_in_duckdb, missing_in_postgres, different (with the differing columns), or
   duplicated_in_<engine> when one engine holds more copies of a key. At most MAX_KEYS keys are kept per
   partition (the rest is summarised as truncated) and the descent stops once that many were found.
5. A table may declare a tolerance for its measures: a partition whose only differences are measure values
   within it is `mismatched` but `within_threshold`, which the Great Expectations suite
   (expectations/gx/expectations/reconciliation.json, validated against the report rows as a small pandas
   DataFrame) accepts. Any other mismatch fails the suite, which is what fails the command (exit 1).
6. The report rows go to `evident.reconciliations` in every engine (created if missing).

Cost: on Postgres one count + sum scan plus the hashing of changed partitions (md5 of the canonical text costs
~1.5-2 µs per row per core, ~15x that scan); DuckDB's scan with its marker costs less than that. Postgres
indexes published tables on their partition column, so hashing, narrowing and fetching one partition read just
that partition; raw tables have no such index (landing would pay for it) and are scanned. What a full
reconcile alone sees: a write Postgres did not record (triggers disabled) that changed neither a count nor a
measure.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date, datetime

from evident.engines import Engine
from evident.errors import ConfigError
from evident.fingerprint import GroupFingerprint
from evident.project import Project
from evident.reconcile.pinpoint import LEAF_ROWS, pinpoint
from evident.reconcile.report import MAX_KEYS, KeyDiff, PartitionResult, ReconcileReport
from evident.reconcile.specs import TableSpec, resolve_tables
from evident.reconcile.sql import Sides, window
from evident.reconcile.stored import current_fingerprints, same_totals


def split_engines(engines: Sequence[Engine]) -> tuple[Engine | None, Engine | None]:
    """(the fast path, the authoritative store) among the configured engines; None where one is missing."""
    fast = next((e for e in engines if not e.AUTHORITATIVE), None)
    authoritative = next((e for e in engines if e.AUTHORITATIVE), None)
    return fast, authoritative


def _to_date(value) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def reconcile(engines: Sequence[Engine], run_id: str, *, tables: Sequence[str] | None = None,
              date_from: date | str | None = None, date_to: date | str | None = None,
              max_keys: int = MAX_KEYS, leaf_rows: int = LEAF_ROWS, project: Project | None = None,
              full: bool = False) -> ReconcileReport:
    """Compare the tables between the DuckDB and the Postgres engine; see the module docstring."""
    duck, pg = split_engines(engines)
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
    specs = resolve_tables(tables, project)
    started = time.perf_counter()
    report = ReconcileReport(run_id, "matched", tables=[s.name for s in specs], date_from=date_from,
                             date_to=date_to, full=full)
    for engine in (duck, pg):
        engine.session_setup()
    sides = Sides(duck, pg)
    try:
        for spec in specs:
            results, hashed = _reconcile_table(sides, spec, date_from, date_to, max_keys, leaf_rows, full, run_id)
            report.partitions += results
            report.partitions_hashed += hashed
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
    return engine.table_exists(schema, name)


def _reconcile_table(sides: Sides, spec: TableSpec, date_from, date_to, max_keys, leaf_rows, full: bool,
                     run_id: str) -> tuple[list[PartitionResult], int]:
    """The partitions of one table compared (step 1-5 of the module docstring), and how many were hashed."""
    where, params = window(spec, date_from, date_to)
    exists = (_table_exists(sides.duck, spec.name), _table_exists(sides.pg, spec.name))
    if not all(exists):
        absent = [n for n, ok in zip(("duckdb", "postgres"), exists) if not ok]
        if len(absent) == 2:
            return [], 0
        present = sides.duck if exists[0] else sides.pg
        rows = present.fetchvalue(f"select count(*) from {spec.name}" + (f" where {where}" if where else ""), params)
        return [PartitionResult(spec.name, "*", rows if exists[0] else 0, rows if exists[1] else 0, {}, {},
                                "mismatched", spec.measure_tolerance, [KeyDiff("*", f"table_missing_in_{absent[0]}")])
                ], 0

    def current(engine: Engine) -> tuple[dict[str, GroupFingerprint], int]:
        with engine.transaction():
            return current_fingerprints(engine, spec, run_id, date_from=date_from, date_to=date_to, full=full)

    (duck_view, duck_hashed), (pg_view, pg_hashed) = sides.both(current)
    results = []
    for part in sorted(set(duck_view) | set(pg_view)):
        d, p = duck_view.get(part), pg_view.get(part)
        d_sums = dict(zip(spec.measures, d.measure_sums)) if d else {}
        p_sums = dict(zip(spec.measures, p.measure_sums)) if p else {}
        same = same_totals(d, p) and d is not None and p is not None and d.row_hash_sum == p.row_hash_sum
        results.append(PartitionResult(spec.name, part, d.rows if d else 0, p.rows if p else 0, d_sums, p_sums,
                                       "matched" if same else "mismatched", spec.measure_tolerance))
    pinpoint(sides, spec, [r for r in results if r.status != "matched"], max_keys, leaf_rows)
    return results, max(duck_hashed, pg_hashed)
