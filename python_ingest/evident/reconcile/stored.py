"""The partition fingerprints reconciliation keeps in each engine's control plane (evident.partition_fingerprints),
so that only partitions that changed are hashed again.

Per table and partition, each engine keeps what it computed when it last hashed the partition: the row count,
the sum of row hashes (the cross-engine fingerprint, evident.fingerprint) and its own change marker
(Engine.change_marker_sql, taken in the same scan). A partition whose live count and change marker are still
the stored ones holds the rows that were hashed; any write to it — Evident's or anyone's — moves the marker.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from evident.control.batches import utcnow
from evident.engines import Engine
from evident.fingerprint import GroupFingerprint

_INSERT_ROWS = 200  # partitions per INSERT statement


@dataclass(frozen=True)
class StoredFingerprint:
    rows: int
    row_hash_sum: int
    change_marker: str

    def still_holds(self, live: GroupFingerprint) -> bool:
        """True when the partition's live count and change marker are the ones this was computed with."""
        return self.rows == live.rows and self.change_marker == live.change_marker


def stored_fingerprints(engine: Engine, table: str) -> dict[str, StoredFingerprint]:
    """{partition: StoredFingerprint} this engine keeps for `table`."""
    return {part: StoredFingerprint(int(rows), int(hash_sum), marker) for part, rows, hash_sum, marker in
            engine.fetchall("select partition, row_count, row_hash_sum, change_marker "
                            "from evident.partition_fingerprints where table_name = %s", [table])}


def store_fingerprints(engine: Engine, table: str, fresh: Mapping[str, GroupFingerprint], gone: Iterable[str],
                       run_id: str) -> None:
    """Replace the stored fingerprints of the freshly hashed partitions and forget the partitions that are gone
    (one transaction)."""
    replaced = sorted(set(fresh) | set(gone))
    if not replaced:
        return
    now = utcnow()
    rows = [(table, part, fp.rows, str(fp.row_hash_sum), fp.change_marker or "", run_id, now)
            for part, fp in sorted(fresh.items())]
    with engine.transaction():
        for start in range(0, len(replaced), _INSERT_ROWS):
            chunk = replaced[start:start + _INSERT_ROWS]
            engine.execute("delete from evident.partition_fingerprints where table_name = %s and partition in ("
                           + ", ".join(["%s"] * len(chunk)) + ")", [table, *chunk])
        for start in range(0, len(rows), _INSERT_ROWS):
            chunk_rows = rows[start:start + _INSERT_ROWS]
            engine.execute("insert into evident.partition_fingerprints (table_name, partition, row_count, "
                           "row_hash_sum, change_marker, run_id, fingerprinted_at) values "
                           + ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(chunk_rows)),
                           [v for r in chunk_rows for v in r])
