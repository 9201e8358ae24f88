"""What each engine keeps for reconciliation, so that only partitions that changed are hashed: the fingerprint
of each partition as last hashed (evident.partition_fingerprints) and, where the engine records them, the
partitions written to since (evident.partition_changes).

    view, hashed = current_fingerprints(engine, spec, run_id)   # {partition: fingerprint}, as the rows are now

Per table and partition an engine keeps the row count, the exact measure sums, the sum of row hashes (the
cross-engine fingerprint, evident.fingerprint) and — on an engine that does not record changes — its change
marker of those rows (Engine.change_marker_sql), all from one scan. Which partitions were written to since:
- Postgres records them by trigger, whoever writes (Engine.RECORDS_CHANGES); the rest of the table must still
  total (count, measure sums) what was hashed — one count + sum scan — or a grouped scan finds the partitions
  that moved without a record (triggers disabled, a restored backup);
- DuckDB compares each partition's count and change marker with the stored ones, in one scan.
Only those are hashed again (one query, by the partition column's own values); the others keep theirs. With
`full`, or when nothing is kept yet or the table was truncated, every partition is hashed in one scan.
Publish calls this for what it wrote, reconciliation for every table: each pays for what changed since.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from evident.control.batches import utcnow
from evident.engines import Engine
from evident.fingerprint import GroupFingerprint, grouped_fingerprints
from evident.reconcile.specs import TableSpec
from evident.reconcile.sql import partition_sql, partitions_where, window

_ROWS_PER_STATEMENT = 200
EVERY_PARTITION = "*"  # a change record of a truncate


@dataclass(frozen=True)
class StoredFingerprint:
    rows: int
    row_hash_sum: int
    measure_sums: tuple  # Decimal, or None where the measure was all NULL
    change_marker: str

    def still_holds(self, live: GroupFingerprint) -> bool:
        """True when the partition's live count and change marker are the ones this was computed with."""
        return self.rows == live.rows and self.change_marker == live.change_marker

    def as_group(self) -> GroupFingerprint:
        return GroupFingerprint(self.rows, self.row_hash_sum, self.measure_sums, self.change_marker)


def current_fingerprints(engine: Engine, spec: TableSpec, run_id: str, *, date_from: date | None = None,
                         date_to: date | None = None, full: bool = False) -> tuple[dict[str, GroupFingerprint], int]:
    """{partition: fingerprint} of `spec`'s table in this engine as its rows are now (inside the date window),
    hashing only the partitions written to since they were last hashed; and how many were hashed. The stored
    fingerprints and change records are brought up to date in the caller's transaction."""
    where, params = window(spec, date_from, date_to)
    kept = {p: fp for p, fp in stored_fingerprints(engine, spec.name).items() if _in_window(p, date_from, date_to)}
    recorded, txids = recorded_changes(engine, spec.name)
    recorded = {p for p in recorded if p == EVERY_PARTITION or _in_window(p, date_from, date_to)}
    if full or not kept or EVERY_PARTITION in recorded:
        fresh = _scan(engine, spec, where, params, hash_rows=True)
        view, hashed = fresh, set(fresh) | set(kept)
    else:
        hashed = _changed_since_hashed(engine, spec, where, params, kept, recorded)
        fresh = {}
        if hashed:
            hashed_where, hashed_params = partitions_where(spec, sorted(hashed), where, params)
            fresh = _scan(engine, spec, hashed_where, hashed_params, hash_rows=True)
        view = {**{p: fp.as_group() for p, fp in kept.items() if p not in hashed}, **fresh}
    _store(engine, spec.name, fresh, [p for p in kept if p in hashed and p not in fresh], run_id, recorded, txids)
    return view, len(hashed)


def stored_fingerprints(engine: Engine, table: str) -> dict[str, StoredFingerprint]:
    """{partition: StoredFingerprint} this engine keeps for `table`."""
    return {part: StoredFingerprint(int(rows), int(hash_sum), tuple(None if v is None else Decimal(v)
                                                                     for v in json.loads(sums)), marker)
            for part, rows, sums, hash_sum, marker in engine.fetchall(
                "select partition, row_count, measure_sums, row_hash_sum, change_marker "
                "from evident.partition_fingerprints where table_name = %s", [table])}


def recorded_changes(engine: Engine, table: str) -> tuple[set[str], list[int]]:
    """The partitions of `table` written to since they were last hashed, and the writing transactions, as this
    engine recorded them (none where it does not record changes)."""
    if not engine.RECORDS_CHANGES:
        return set(), []
    found = engine.fetchall("select distinct partition, txid from evident.partition_changes where table_name = %s",
                            [table])
    return {part for part, _ in found}, sorted({int(txid) for _, txid in found})


def _scan(engine: Engine, spec: TableSpec, where: str, params: list, *, hash_rows: bool,
          marker: bool = True) -> dict[str, GroupFingerprint]:
    """Per partition: count, measure sums, and (`hash_rows`) the row hash sum and (on an engine that does not
    record changes) the change marker — one scan."""
    found = grouped_fingerprints(engine, spec.name, list(spec.columns), partition_sql(spec), spec.measures, where,
                                 params, hash_rows=hash_rows, change_marker=marker and not engine.RECORDS_CHANGES)
    return {str(part): fp for part, fp in found.items()}


def _changed_since_hashed(engine: Engine, spec: TableSpec, where: str, params: list,
                          kept: dict[str, StoredFingerprint], recorded: set[str]) -> set[str]:
    """The partitions this engine wrote to since it last hashed them, or never hashed (module docstring)."""
    if not engine.RECORDS_CHANGES:
        live = _scan(engine, spec, where, params, hash_rows=False)
        return {p for p in set(live) | set(kept) if p not in live or p not in kept or not kept[p].still_holds(live[p])}
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
    return set(recorded) | {p for p in set(live) | set(kept) if p not in recorded and not same_totals(
        live.get(p), kept[p].as_group() if p in kept else None)}


def same_totals(a: GroupFingerprint | None, b: GroupFingerprint | None) -> bool:
    """Both hold the partition, with the same count and the same exact measure sums."""
    return (a is not None and b is not None and a.rows == b.rows
            and all(_num_eq(x, y) for x, y in zip(a.measure_sums, b.measure_sums)))


def _num_eq(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and Decimal(a) == Decimal(b))


def _in_window(part: str, date_from: date | None, date_to: date | None) -> bool:
    if date_from is None and date_to is None:
        return True
    try:
        day = date.fromisoformat(part)
    except ValueError:  # the NULL partition, or every partition ('*'): outside every window
        return False
    return (date_from is None or day >= date_from) and (date_to is None or day <= date_to)


def _store(engine: Engine, table: str, fresh: Mapping[str, GroupFingerprint], gone: Iterable[str], run_id: str,
           recorded: set[str], txids: list[int]) -> None:
    """Replace the stored fingerprints of the freshly hashed partitions, forget the partitions that are gone and
    the change records that were read (those partitions, those writing transactions)."""
    replaced = sorted(set(fresh) | set(gone))
    now = utcnow()
    rows = [(table, part, fp.rows, json.dumps([None if v is None else str(v) for v in fp.measure_sums]),
             str(fp.row_hash_sum), fp.change_marker or "", run_id, now) for part, fp in sorted(fresh.items())]
    for chunk in _chunks(replaced):
        engine.execute("delete from evident.partition_fingerprints where table_name = %s and partition in ("
                       + ", ".join(["%s"] * len(chunk)) + ")", [table, *chunk])
    for chunk_rows in _chunks(rows):
        engine.execute("insert into evident.partition_fingerprints (table_name, partition, row_count, measure_sums, "
                       "row_hash_sum, change_marker, run_id, fingerprinted_at) values "
                       + ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(chunk_rows)),
                       [v for r in chunk_rows for v in r])
    if txids and recorded:
        engine.execute("delete from evident.partition_changes where table_name = %s and partition = any(%s) "
                       "and txid = any(%s)", [table, sorted(recorded), txids])


def _chunks(items: list) -> Iterable[list]:
    for start in range(0, len(items), _ROWS_PER_STATEMENT):
        yield items[start:start + _ROWS_PER_STATEMENT]
