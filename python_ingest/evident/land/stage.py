"""A batch staged whole inside one engine's transaction, then judged set-based, in the engine, against itself
and the landed rows (no key of the batch is held in Python).

First delivery wins (DESIGN): each staged row is judged against the row that holds its key — the landed row
if there is one, else the key's first delivery in this batch (its smallest line). The same payload is a
duplicate, another payload a conflicting duplicate (quarantined with its line as delivered). What is left,
the first delivery of each key not landed yet, is inserted into raw.<source>.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa

from evident.engines import Engine
from evident.land.raw_tables import KEY_COLUMN, PAYLOAD_COLUMN, RawTable

STAGE = "evident_stage"
LANDED = "evident_stage_landed"  # keys of the batch already in raw, with their landed payload
REPEATS = "evident_stage_repeats"  # keys delivered more than once in the batch, with their first delivery
_NEW = (f"from {STAGE} s where not exists (select 1 from {LANDED} l where l.{KEY_COLUMN} = s.{KEY_COLUMN}) "
        f"and not exists (select 1 from {REPEATS} d where d.{KEY_COLUMN} = s.{KEY_COLUMN} "
        "and d.first_line <> s.source_line)")


@dataclass
class Conflict:
    line: int
    key: str
    first_line: int | None  # the key's first delivery in this batch, when that is what it conflicts with


@dataclass
class Judgement:
    """What the staged rows are besides new: duplicates and conflicts, and the payloads of all of them."""

    duplicates: int
    conflicts: list[Conflict]
    not_new: int
    not_new_checksum: int  # sum of their payload hashes (the batch's checksum counts new rows only)


class BatchStage:
    def __init__(self, engine: Engine, table: RawTable):
        self.engine, self.table = engine, table

    def open(self) -> None:
        self.engine.create_stage(STAGE, self.table.stage_columns)

    def append(self, rows: pa.Table) -> None:
        if rows.num_rows:
            self.engine.append_arrow(STAGE, rows)

    def judge(self) -> Judgement:
        engine, raw, key = self.engine, self.table.name, KEY_COLUMN
        engine.staged(STAGE)
        engine.stage_query(LANDED, f"select r.{key}, r.{PAYLOAD_COLUMN} from {raw} r "
                                   f"where r.{key} in (select {key} from {STAGE})")
        engine.stage_query(REPEATS, (
            f"select s.{key}, s.source_line as first_line, s.{PAYLOAD_COLUMN} from {STAGE} s join ("
            f"select {key}, min(source_line) as first_line from {STAGE} group by {key} having count(*) > 1"
            f") k on k.{key} = s.{key} and k.first_line = s.source_line"))
        rows = engine.fetchall(
            f"select s.source_line, s.{key}, s.{PAYLOAD_COLUMN}, "
            f"coalesce(l.{PAYLOAD_COLUMN}, d.{PAYLOAD_COLUMN}), l.{key} is not null, d.first_line "
            f"from {STAGE} s left join {LANDED} l on l.{key} = s.{key} left join {REPEATS} d on d.{key} = s.{key} "
            f"where l.{key} is not null or (d.{key} is not null and s.source_line <> d.first_line) "
            "order by s.source_line")
        conflicts = [Conflict(line, row_key, None if against_landed else first_line)
                     for line, row_key, payload, holder, against_landed, first_line in rows if payload != holder]
        return Judgement(len(rows) - len(conflicts), conflicts, len(rows),
                         sum(int(payload, 16) for _, _, payload, *_ in rows))

    def insert_new(self, batch_id: str, land_seq: int, source_file: str, contract_id: str, at: datetime) -> None:
        data = [c.name for c in self.table.data_columns]
        audit = ["batch_id", "land_seq", "source_file", "source_line", "contract_id", "landed_at"]
        self.engine.execute(
            f"insert into {self.table.name} ({', '.join(data + audit)}) "
            f"select {', '.join('s.' + c for c in data)}, cast(%s as varchar), cast(%s as bigint), "
            f"cast(%s as varchar), s.source_line, cast(%s as varchar), cast(%s as timestamp) {_NEW}",
            [batch_id, land_seq, source_file, contract_id, at])

    def partitions(self) -> tuple[datetime | None, datetime | None, list[date]]:
        """The new rows' first and last partition instant and their partition dates."""
        column = f"s.{self.table.contract.partition_by}"
        lo, hi = self.engine.fetchall(f"select min({column}), max({column}) {_NEW}")[0]
        days = self.engine.fetchall(f"select distinct cast({column} as date) {_NEW} and {column} is not null")
        return _instant(lo), _instant(hi), sorted(day for day, in days)


def _instant(value: date | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.combine(value, datetime.min.time())
