"""What each engine's control plane keeps for reconciliation, so that only partitions that changed are hashed:
the fingerprint of each partition as last hashed (evident.partition_fingerprints) and, where the engine records
them, the partitions written to since (evident.partition_changes).

Per table and partition an engine keeps the row count, the exact measure sums, the sum of row hashes (the
cross-engine fingerprint, evident.fingerprint) and — on an engine that does not record changes — its change
marker of those rows (Engine.change_marker_sql), all from one scan. A partition nobody wrote to since holds the
rows that were hashed: on Postgres no write was recorded for it, on DuckDB its count and marker are unchanged.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from evident.control.batches import utcnow
from evident.engines import Engine
from evident.fingerprint import GroupFingerprint

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


def stored_fingerprints(engine: Engine, table: str) -> dict[str, StoredFingerprint]:
    """{partition: StoredFingerprint} this engine keeps for `table`."""
    return {part: StoredFingerprint(int(rows), int(hash_sum), tuple(None if v is None else Decimal(v)
                                                                     for v in json.loads(sums)), marker)
            for part, rows, sums, hash_sum, marker in engine.fetchall(
                "select partition, row_count, measure_sums, row_hash_sum, change_marker "
                "from evident.partition_fingerprints where table_name = %s", [table])}


def store_fingerprints(engine: Engine, table: str, fresh: Mapping[str, GroupFingerprint], gone: Iterable[str],
                       run_id: str, forget: tuple[list[str], list[int]] = ([], [])) -> None:
    """In one transaction: replace the stored fingerprints of the freshly hashed partitions, forget the
    partitions that are gone, and the change records (partitions, writing transactions) that were read."""
    replaced = sorted(set(fresh) | set(gone))
    now = utcnow()
    rows = [(table, part, fp.rows, json.dumps([None if v is None else str(v) for v in fp.measure_sums]),
             str(fp.row_hash_sum), fp.change_marker or "", run_id, now) for part, fp in sorted(fresh.items())]
    parts, txids = forget
    if not replaced and not txids:
        return
    with engine.transaction():
        for chunk in _chunks(replaced):
            engine.execute("delete from evident.partition_fingerprints where table_name = %s and partition in ("
                           + ", ".join(["%s"] * len(chunk)) + ")", [table, *chunk])
        for chunk_rows in _chunks(rows):
            engine.execute("insert into evident.partition_fingerprints (table_name, partition, row_count, "
                           "measure_sums, row_hash_sum, change_marker, run_id, fingerprinted_at) values "
                           + ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(chunk_rows)),
                           [v for r in chunk_rows for v in r])
        if txids:
            engine.execute("delete from evident.partition_changes where table_name = %s and partition = any(%s) "
                           "and txid = any(%s)", [table, list(parts), list(txids)])


def recorded_changes(engine: Engine, table: str) -> tuple[set[str], list[int]]:
    """The partitions of `table` written to since they were last hashed, and the writing transactions, as this
    engine recorded them (none where it does not record changes)."""
    if not engine.RECORDS_CHANGES:
        return set(), []
    found = engine.fetchall("select distinct partition, txid from evident.partition_changes where table_name = %s",
                            [table])
    return {part for part, _ in found}, sorted({int(txid) for _, txid in found})


def _chunks(items: list) -> Iterable[list]:
    for start in range(0, len(items), _ROWS_PER_STATEMENT):
        yield items[start:start + _ROWS_PER_STATEMENT]
