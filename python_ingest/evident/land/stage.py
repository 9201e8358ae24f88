"""One batch landing in one engine's open transaction, chunk by chunk, judged set-based in the engine (no key of
the batch is held in Python beyond one chunk).

First delivery wins (DESIGN): a record is judged against the row that holds its key — a row landed before, or
the key's first delivery in this batch. The same payload is a duplicate; another payload is a conflicting
duplicate, quarantined with its line as delivered.

Chunks come in line order. Each chunk's first deliveries go into raw.<source> at once with ON CONFLICT DO
NOTHING, so the first delivery of a key — in this chunk, an earlier one, or an earlier batch — is the row that
stays. When every one of them was new (the common case), the chunk is judged completely: its later deliveries
are judged against its own first ones, which landed. Otherwise its later deliveries and the first ones that did
not land (the engine names them) are kept in a stage and, at the end of the batch, judged in one join against
raw.<source>. Nothing commits until the caller's transaction does.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from evident.engines import Engine, Inserted, arrow_schema
from evident.land.chunks import ValidatedChunk
from evident.land.raw_tables import AUDIT_COLUMNS, KEY_COLUMN, PAYLOAD_COLUMN, RawTable

KEYS = "evident_stage_keys"  # keys of the chunks that met rows already in raw, judged at the end
_KEY_COLUMNS = ((KEY_COLUMN, "varchar"), (PAYLOAD_COLUMN, "varchar"), ("source_line", "integer"),
                ("first_in_chunk", "boolean"))
_KEY_SCHEMA = arrow_schema(_KEY_COLUMNS)


@dataclass
class Conflict:
    line: int
    key: str
    first_line: int | None  # the line of this batch it conflicts with; None: a row landed before
    raw_text: str | None = None  # as delivered, when known already


class BatchStage:
    def __init__(self, engine: Engine, table: RawTable, batch_id: str, land_seq: int, source_file: str,
                 contract_id: str, at: datetime):
        self.engine, self.table, self.batch_id, self.land_seq = engine, table, batch_id, land_seq
        self.landed = self.duplicates = 0
        self.conflicts: list[Conflict] = []
        self.checksum = 0  # sum of the landed rows' payload hashes (keys.checksum_text)
        self._kept = False
        # how the rows were landed: the same for every row of the batch but its line, which each row carries
        values = {"batch_id": batch_id, "land_seq": land_seq, "source_file": source_file,
                  "contract_id": contract_id, "landed_at": at}
        self._audit = [(name, sql_type, values[name]) for name, sql_type in AUDIT_COLUMNS if name in values]

    def land(self, chunk: ValidatedChunk) -> None:
        """The chunk's first deliveries into raw (those whose key is new), its later ones judged or kept."""
        rows = chunk.rows
        inserted, skipped = Inserted(0, [])
        if rows.num_rows:
            inserted, skipped = self.engine.insert_new(self.table.name, KEY_COLUMN, rows, self.table.stage_columns,
                                                       self._audit, "source_line")
        self.landed += inserted
        self.checksum += chunk.checksum
        if inserted == rows.num_rows:  # all first deliveries landed: each later one is judged against its own
            for again in chunk.later:
                if again.raw_text is None:
                    self.duplicates += 1
                else:
                    self.conflicts.append(Conflict(again.line, again.key, again.first_line, again.raw_text))
            return
        if not self._kept:
            self.engine.create_stage(KEYS, _KEY_COLUMNS)
            self._kept = True
        later = chunk.later
        rows = rows.filter(pc.is_in(rows.column("source_line"), value_set=pa.array(skipped, pa.int32())))
        self.engine.append_arrow(KEYS, pa.concat_tables([
            pa.table([rows.column(KEY_COLUMN), rows.column(PAYLOAD_COLUMN), rows.column("source_line"),
                      pa.array([True] * rows.num_rows)], schema=_KEY_SCHEMA),
            pa.table([[x.key for x in later], [x.payload for x in later], [x.line for x in later],
                      [False] * len(later)], schema=_KEY_SCHEMA)]))

    def judge(self) -> None:
        """The kept chunks' records that did not land, each against the row that holds its key."""
        if not self._kept:
            return
        key, payload = KEY_COLUMN, PAYLOAD_COLUMN
        rows = self.engine.fetchall(
            f"select s.source_line, s.{key}, s.{payload}, r.{payload}, r.land_seq = %s, r.source_line, "
            f"s.first_in_chunk from {KEYS} s {self.engine.join_on_primary_key(self.table.name, 'r', key, 's')} "
            "where not (r.land_seq = %s and r.source_line = s.source_line) order by s.source_line",
            [self.land_seq, self.land_seq])
        for line, row_key, row_payload, holder, this_batch, holder_line, first_in_chunk in rows:
            if first_in_chunk:  # counted in its chunk's checksum, but did not land
                self.checksum -= int(row_payload, 16)
            if row_payload == holder:
                self.duplicates += 1
            else:
                self.conflicts.append(Conflict(line, row_key, holder_line if this_batch else None))

    def unland(self) -> None:
        """Take the batch's rows out of raw again (it failed; its transaction commits only the evidence)."""
        self.engine.execute(f"delete from {self.table.name} where land_seq = %s", [self.land_seq])

    def partitions(self) -> tuple[datetime | None, datetime | None, list[date]]:
        """The landed rows' first and last partition instant and their partition dates."""
        column, raw = self.table.contract.partition_by, self.table.name
        lo, hi = self.engine.fetchall(f"select min({column}), max({column}) from {raw} where land_seq = %s",
                                      [self.land_seq])[0]
        days = self.engine.fetchall(f"select distinct cast({column} as date) from {raw} "
                                    f"where land_seq = %s and {column} is not null", [self.land_seq])
        return _instant(lo), _instant(hi), sorted(day for day, in days)


def _instant(value: date | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.combine(value, datetime.min.time())
