"""Fingerprints computed inside each engine agree across engines for equal rows and differ for any change."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from evident.engines import DuckDBEngine, PostgresEngine
from evident.fingerprint import Column, fingerprint

COLUMNS = [Column("k", "text"), Column("n", "int"), Column("ts", "timestamp"), Column("d", "date"),
           Column("amount", "decimal"), Column("flag", "bool"), Column("note", "text")]
DDL = ("create table t (k varchar, n bigint, ts timestamp, d date, amount decimal(18,2), flag boolean, "
       "note varchar)")
ROWS = [
    ("a", 1, datetime(2026, 1, 1, 0, 0, 0, 1), date(2026, 1, 1), Decimal("123456789.25"), True, None),
    ("b", 2 ** 62, datetime(2099, 12, 31, 23, 59, 59, 999999), date(2000, 1, 1), Decimal("0.00"), False, ""),
    ("é中😀", -5, datetime(2026, 6, 1, 12, 0), date(2026, 6, 1), None, None, "x\x1fy"),
]


@pytest.fixture
def engines(tmp_path, fresh_pg_dsn):
    duck, pg = DuckDBEngine(tmp_path / "f.duckdb"), PostgresEngine(fresh_pg_dsn)
    for engine in (duck, pg):
        engine.execute(DDL)
    yield duck, pg
    duck.close()
    pg.close()


def load(engine, rows):
    engine.execute("delete from t")
    engine.bulk_insert("t", [c.name for c in COLUMNS], rows)


def test_equal_rows_give_equal_fingerprints_on_both_engines(engines):
    duck, pg = engines
    for engine in engines:
        load(engine, ROWS)
    assert fingerprint(duck, "t", COLUMNS) == fingerprint(pg, "t", COLUMNS)
    assert fingerprint(duck, "t", COLUMNS)[0] == 3


@pytest.mark.parametrize("change", [
    lambda r: r[:2] + (r[2].replace(microsecond=2),) + r[3:],     # timestamp shifted by 1 µs
    lambda r: r[:6] + ("",),                                      # NULL turned into ''
    lambda r: r[:4] + (Decimal("123456789.26"),) + r[5:],         # measure changed by a cent
    lambda r: r[:5] + (None,) + r[6:],                            # boolean to NULL
])
def test_any_single_change_changes_the_fingerprint(engines, change):
    duck, pg = engines
    load(duck, ROWS)
    load(pg, [change(ROWS[0])] + ROWS[1:])
    assert fingerprint(duck, "t", COLUMNS) != fingerprint(pg, "t", COLUMNS)


def test_columns_do_not_run_into_each_other(engines):
    duck, _ = engines
    load(duck, [("1", 11, None, None, None, None, None)])
    first = fingerprint(duck, "t", COLUMNS)
    load(duck, [("11", 1, None, None, None, None, None)])
    assert fingerprint(duck, "t", COLUMNS) != first
