"""Order-independent table fingerprints computed inside each engine, equal across engines for equal rows.

A row's canonical text joins its columns with U+001F, NULL as U+0001 (distinct from ''), timestamps at
microsecond precision in UTC, decimals at their fixed scale, booleans as true/false. Its md5 (identical on
both engines for identical UTF-8 text) gives a 48-bit integer; the fingerprint is (row count, sum of those).
"""
from __future__ import annotations

from dataclasses import dataclass

from .engines import Engine

SEP = "chr(31)"
NULL_MARK = "chr(1)"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # text | int | timestamp | date | decimal | bool


def _text(engine: str, col: Column) -> str:
    ident = '"' + col.name.replace('"', '""') + '"'
    if col.kind == "timestamp":
        expr = (f"to_char({ident}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US')" if engine == "postgres"
                else f"strftime({ident}, '%Y-%m-%dT%H:%M:%S.%f')")
    elif col.kind == "date":
        expr = f"to_char({ident}, 'YYYY-MM-DD')" if engine == "postgres" else f"strftime({ident}, '%Y-%m-%d')"
    elif col.kind == "text":
        expr = ident
    else:  # int, decimal (fixed scale prints its zeros on both engines), bool (true/false on both)
        expr = f"cast({ident} as varchar)"
    return f"coalesce({expr}, {NULL_MARK})"


def row_text_sql(engine: str, columns: list[Column]) -> str:
    return f" || {SEP} || ".join(_text(engine, c) for c in columns)


def row_hash_sql(engine: str, columns: list[Column]) -> str:
    """The row's md5 as a 48-bit integer (sums of them cannot overflow either engine)."""
    digest = f"md5({row_text_sql(engine, columns)})"
    if engine == "postgres":
        return f"('x' || substr({digest}, 1, 12))::bit(48)::bigint"
    return f"cast(('0x' || substr({digest}, 1, 12)) as bigint)"


def fingerprint(engine: Engine, table: str, columns: list[Column], where: str = "", params=()) -> tuple[int, int]:
    """(row count, sum of row hashes) of `table`, computed in the engine."""
    sql = f"select count(*), coalesce(sum({row_hash_sql(engine.name, columns)}), 0) from {table}"
    count, total = engine.fetchone(sql + (f" where {where}" if where else ""), params)
    return int(count), int(total)
