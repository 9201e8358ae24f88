"""DuckDBEngine.sql: our schema names qualified with the file's catalog, nothing inside a string literal."""
from __future__ import annotations

from evident.engines import DuckDBEngine


def test_schema_names_are_catalog_qualified_outside_string_literals_only(tmp_path):
    engine = DuckDBEngine(tmp_path / "evident.duckdb")  # a catalog named like one of the schemas
    try:
        engine.execute("create schema if not exists raw")
        engine.execute("create table raw.notes (note varchar)")
        engine.execute("insert into raw.notes values ('raw.orders: it''s published.x'), (%s)", ["evident.y"])
        assert engine.fetchall("select note from raw.notes order by note") == [
            ("evident.y",), ("raw.orders: it's published.x",)]
        assert engine.sql("select 'raw.a', raw.b from evident.c where x = %s") == \
            """select 'raw.a', "evident".raw.b from "evident".evident.c where x = ?"""
    finally:
        engine.close()
