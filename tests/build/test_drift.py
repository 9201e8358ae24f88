"""compare_model (evident.build.drift): two tables of one published model inside one engine, row by row — on
a real DuckDB file and on the real Postgres test server, with the kinds, columns, NULLs and caps spelled out."""
from __future__ import annotations

import pytest

from evident.build.drift import MAX_KEYS, compare_model
from evident.build.manifest import ContractColumn, PublishedModel
from evident.engines import DuckDBEngine, PostgresEngine

MODEL = PublishedModel(
    name="fct_things", schema="analytics", alias="fct_things",
    columns=(ContractColumn("thing_date", "date", False), ContractColumn("name", "varchar", True),
             ContractColumn("amount", "decimal(18,2)", True), ContractColumn("note", "varchar", False)),
    key=("thing_date", "name"), partition_by="thing_date", measures=("amount",))

ROWS = [("2024-01-01", "a", "1.00", "x"), ("2024-01-01", "b", "2.00", None), ("2024-01-02", "c", "3.00", "y"),
        ("2024-01-03", "d", "4.00", "z"), (None, "n", "5.00", None)]


@pytest.fixture(params=["duckdb", "postgres"])
def engine(request, tmp_path):
    if request.param == "duckdb":
        eng = DuckDBEngine(tmp_path / "warehouse.duckdb")
    else:
        eng = PostgresEngine(request.getfixturevalue("fresh_pg_dsn"))
    with eng.transaction():
        for schema in ("analytics", "analytics_incremental"):
            eng.execute(f"create schema if not exists {schema}")
            eng.execute(f"create table {schema}.fct_things (thing_date date, name varchar not null, "
                        "amount decimal(18,2) not null, note varchar)")
    yield eng
    eng.close()


def fill(engine, schema: str, rows) -> None:
    with engine.transaction():
        for row in rows:
            engine.execute(f"insert into {schema}.fct_things values (cast(%s as date), %s, cast(%s as decimal(18,2)), "
                           "%s)", list(row))


def compare(engine):
    return compare_model(engine, MODEL, 'analytics_incremental."fct_things"', MODEL.audited)


def test_equal_tables_have_no_drift(engine):
    fill(engine, "analytics", ROWS)
    fill(engine, "analytics_incremental", ROWS)
    audit = compare(engine)
    assert (audit.compared, audit.drift, audit.status, audit.incremental_rows, audit.full_refresh_rows) == \
        (True, False, "no_drift", 5, 5)


def test_each_kind_of_drift_is_reported_by_partition_and_key(engine):
    fill(engine, "analytics", ROWS)
    fill(engine, "analytics_incremental", [
        ("2024-01-01", "a", "1.50", ""),         # different: amount, and NULL → '' is not equal
        ("2024-01-01", "b", "2.00", None),
        ("2024-01-02", "c", "3.00", "y"), ("2024-01-02", "c", "3.00", "y"),  # duplicated
        ("2024-01-02", "e", "9.00", None),        # extra
        # 2024-01-03 d is missing
        (None, "n", "5.00", "late"),              # a NULL partition is a partition too
    ])
    audit = compare(engine)
    assert audit.status == "drift" and (audit.incremental_rows, audit.full_refresh_rows) == (6, 5)
    found = {p.partition: (p.incremental_rows, p.full_refresh_rows, p.counts,
                           [(k.key, k.kind, k.columns, k.incremental, k.full_refresh) for k in p.keys])
             for p in audit.partitions}
    none = {"missing": 0, "extra": 0, "different": 0, "duplicated": 0}
    assert found == {
        "2024-01-01": (2, 2, {**none, "different": 1},
                       [("2024-01-01 | a", "different", ["amount", "note"], {"amount": "1.50", "note": ""},
                         {"amount": "1.00", "note": "x"})]),
        "2024-01-02": (3, 1, {**none, "duplicated": 1, "extra": 1},
                       [("2024-01-02 | c", "duplicated", [], None, None),
                        ("2024-01-02 | e", "extra", [], None, None)]),
        "2024-01-03": (0, 1, {**none, "missing": 1}, [("2024-01-03 | d", "missing", [], None, None)]),
        "NULL": (1, 1, {**none, "different": 1},
                 [("NULL | n", "different", ["note"], {"note": "late"}, {"note": None})]),
    }
    assert audit.counts() == {"missing": 1, "extra": 1, "different": 2, "duplicated": 1}
    sums = {p.partition: (p.incremental_sums, p.full_refresh_sums) for p in audit.partitions}
    assert sums["2024-01-02"] == ({"amount": "15.00"}, {"amount": "3.00"})


def test_keys_beyond_the_cap_are_counted_not_listed(engine):
    fill(engine, "analytics", ROWS)
    extra = [("2024-01-05", f"k{i:03d}", "1.00", None) for i in range(MAX_KEYS + 7)]
    fill(engine, "analytics_incremental", ROWS + extra)
    (part,) = compare(engine).partitions
    assert part.partition == "2024-01-05" and part.counts["extra"] == MAX_KEYS + 7
    assert [k.key for k in part.keys] == [f"2024-01-05 | k{i:03d}" for i in range(MAX_KEYS)]
    assert part.truncated


def test_a_table_whose_columns_changed_is_not_compared(engine):
    with engine.transaction():
        engine.execute("alter table analytics_incremental.fct_things add column extra_col integer")
    audit = compare(engine)
    assert (audit.compared, audit.status) == (False, "not_compared") and "columns changed" in audit.note
