"""`evident reconcile`: prove the DuckDB fast path agrees with authoritative Postgres, and say where it does not.

    report = reconcile([duck, pg], run_id)            # every raw source and every published model
    print(report.render())                             # a table of what differs, per partition and key
    report.success                                     # GX suite verdict when validated, else own verdict

How (nothing is copied wholesale into Python; what costs is hashing rows, so only changed partitions are):

1. Each engine keeps, per table and partition, the fingerprint it computed when it last hashed it
   (evident.reconcile.stored): count, exact measure sums and the sum of per-row hashes over the canonical row
   text (evident.fingerprint: md5 of the columns joined with U+001F, NULL as U+0001, fixed-scale decimals, ISO
   timestamps at µs).
2. The partitions written to since, per engine (both engines at once, in two threads): Postgres records them
   by trigger (Engine.RECORDS_CHANGES), and the rest of its table must still total what was hashed (one count
   + sum scan; if not, a grouped one finds the partitions that moved). DuckDB compares each partition's count
   and change marker (a hash of its rows, Engine.change_marker_sql) with the stored ones, in one scan. Those
   partitions are hashed again on both engines (one query each, by the partition column's own values) and
   their fingerprints replaced; the others keep theirs. `full=True` (`--full`), or an engine that never hashed
   the table, hashes every partition in one scan.
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
from decimal import Decimal

from evident.engines import Engine
from evident.errors import ConfigError
from evident.fingerprint import GroupFingerprint, grouped_fingerprints
from evident.project import Project
from evident.reconcile.pinpoint import LEAF_ROWS, pinpoint
from evident.reconcile.report import MAX_KEYS, KeyDiff, PartitionResult, ReconcileReport
from evident.reconcile.specs import TableSpec, resolve_tables
from evident.reconcile.sql import Sides, partition_sql, partitions_where, window
from evident.reconcile.stored import (
    EVERY_PARTITION,
    StoredFingerprint,
    recorded_changes,
    store_fingerprints,
    stored_fingerprints,
)


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
    (stored_d, changes_d), (stored_p, changes_p) = sides.both(lambda e: (
        _stored_in_window(e, spec, date_from, date_to), _recorded_in_window(e, spec, date_from, date_to)))
    stored, changes = (stored_d, stored_p), (changes_d, changes_p)
    if full or not all(stored) or any(EVERY_PARTITION in parts for parts, _ in changes):
        # every partition, or an engine never hashed the table or saw it truncated: hash all in one scan
        fresh = sides.both(lambda e: _scan(e, spec, where, params, hash_rows=True))
        views = fresh
        hashed = set(fresh[0]) | set(fresh[1])
        gone = tuple([p for p in kept if p not in new] for kept, new in zip(stored, fresh))
    else:
        changed = sides.both(lambda e: _changed_since_hashed(e, spec, where, params, *_side(sides, e, stored, changes)))
        hashed = changed[0] | changed[1]
        fresh = ({}, {})
        if hashed:
            hashed_where, hashed_params = partitions_where(spec, sorted(hashed), where, params)
            fresh = sides.both(lambda e: _scan(e, spec, hashed_where, hashed_params, hash_rows=True))
        views = tuple({**{p: fp.as_group() for p, fp in kept.items() if p not in hashed}, **new}
                      for kept, new in zip(stored, fresh))
        gone = tuple([p for p in kept if p in hashed and p not in new] for kept, new in zip(stored, fresh))
    for engine, new, lost, (parts, txids) in zip((sides.duck, sides.pg), fresh, gone, changes):
        store_fingerprints(engine, spec.name, new, lost, run_id, (sorted(parts), txids))
    results = []
    for part in sorted(set(views[0]) | set(views[1])):
        d, p = views[0].get(part), views[1].get(part)
        d_sums = dict(zip(spec.measures, d.measure_sums)) if d else {}
        p_sums = dict(zip(spec.measures, p.measure_sums)) if p else {}
        same = _same_totals(d, p) and d is not None and p is not None and d.row_hash_sum == p.row_hash_sum
        results.append(PartitionResult(spec.name, part, d.rows if d else 0, p.rows if p else 0, d_sums, p_sums,
                                       "matched" if same else "mismatched", spec.measure_tolerance))
    pinpoint(sides, spec, [r for r in results if r.status != "matched"], max_keys, leaf_rows)
    return results, len(hashed)


def _side(sides: Sides, engine: Engine, *per_engine: tuple) -> tuple:
    """This engine's element of each (duckdb, postgres) pair."""
    return tuple(pair[0 if engine is sides.duck else 1] for pair in per_engine)


def _scan(engine: Engine, spec: TableSpec, where: str, params: list, *, hash_rows: bool,
          marker: bool = True) -> dict[str, GroupFingerprint]:
    """Per partition: count, measure sums, and (`hash_rows`) the row hash sum and (on an engine that does not
    record changes) the change marker — one scan."""
    found = grouped_fingerprints(engine, spec.name, list(spec.columns), partition_sql(spec), spec.measures, where,
                                 params, hash_rows=hash_rows, change_marker=marker and not engine.RECORDS_CHANGES)
    return {str(part): fp for part, fp in found.items()}


def _changed_since_hashed(engine: Engine, spec: TableSpec, where: str, params: list,
                          kept: dict[str, StoredFingerprint], changes: tuple[set[str], list[int]]) -> set[str]:
    """The partitions this engine wrote to since it last hashed them (or never hashed).

    An engine that records changes names them; the rest of the table must still total what was hashed — a
    write that went unrecorded (triggers disabled, a restored backup) is then looked for partition by partition.
    Its cost is one count + sum scan. An engine that does not record changes compares each partition's count
    and change marker with the stored ones, in one scan."""
    if not engine.RECORDS_CHANGES:
        live = _scan(engine, spec, where, params, hash_rows=False)
        return {p for p in set(live) | set(kept) if p not in live or p not in kept or not kept[p].still_holds(live[p])}
    recorded = changes[0]
    rest_where, rest_params = where, params
    if recorded:
        named, named_params = partitions_where(spec, sorted(recorded), "", [])
        rest_where = f"({where}) and not coalesce({named}, false)" if where else f"not coalesce({named}, false)"
        rest_params = [*params, *named_params]
    sums = "".join(f", sum({m})" for m in spec.measures)
    row = engine.fetchone(f"select count(*){sums} from {spec.name}" + (f" where {rest_where}" if rest_where else ""),
                          rest_params)
    rest = [fp for p, fp in kept.items() if p not in recorded]
    expected = (sum(fp.rows for fp in rest), *(sum((fp.measure_sums[i] or 0) for fp in rest)
                                               for i in range(len(spec.measures))))
    if row is not None and tuple(v or 0 for v in row) == expected:
        return set(recorded)
    live = _scan(engine, spec, where, params, hash_rows=False, marker=False)
    unrecorded = {p for p in set(live) | set(kept)
                  if p not in recorded and not _same_totals(live.get(p), _group(kept, p))}
    return set(recorded) | unrecorded


def _group(kept: dict[str, StoredFingerprint], part: str) -> GroupFingerprint | None:
    return kept[part].as_group() if part in kept else None


def _same_totals(d: GroupFingerprint | None, p: GroupFingerprint | None) -> bool:
    """Both hold the partition with the same count and the same exact measure sums."""
    return (d is not None and p is not None and d.rows == p.rows
            and all(_num_eq(a, b) for a, b in zip(d.measure_sums, p.measure_sums)))


def _recorded_in_window(engine: Engine, spec: TableSpec, date_from: date | None, date_to: date | None):
    parts, txids = recorded_changes(engine, spec.name)
    return {p for p in parts if p == EVERY_PARTITION or _in_window(p, date_from, date_to)}, txids


def _stored_in_window(engine: Engine, spec: TableSpec, date_from: date | None, date_to: date | None):
    kept = stored_fingerprints(engine, spec.name)
    return {p: fp for p, fp in kept.items() if _in_window(p, date_from, date_to)}


def _in_window(part: str, date_from: date | None, date_to: date | None) -> bool:
    if date_from is None and date_to is None:
        return True
    try:
        day = date.fromisoformat(part)
    except ValueError:  # the NULL partition: outside every window
        return False
    return (date_from is None or day >= date_from) and (date_to is None or day <= date_to)


def _num_eq(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and Decimal(a) == Decimal(b))
