"""Landing benchmark: `evident land` of N sample events into each engine vs the bare bulk path, same run.

Bare paths (the floor the loader is held to): Postgres — one COPY of the same (already valid, deduplicated)
rows into a table with the same primary key; DuckDB — one INSERT of the same rows, read from Parquet, into
a table with the same primary key. The loader's time includes reading, validating and keying every record.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import duckdb
import psycopg

from evident.control.runs import new_run_id
from evident.engines import DuckDBEngine, PostgresEngine
from evident.land.contracts import load_contract
from evident.land.loader import land_files, prepare_workers
from evident.land.raw_tables import RawTable
from evident.land.sources import load_sources, route
from evident.pipeline.context import prepare_engine
from evident.project import find_project
from evident.revision import code_revision

from .common import Timer, postgres_dsn, sample_dir, write_result

RAW_TABLE_DDL = RawTable(load_contract("app_events", 1)).ddl()[1]


def land_all(engine, landing: Path, workers: int | None) -> float:
    """What `evident land` does: every file in order, validation in workers as configured (None = by size)."""
    project = find_project()
    sources = load_sources(project)
    routed = [(path, sources[name].contract) for name, path in route(sources, landing).ordered()]
    revision, run_id = code_revision(project.root), new_run_id()
    with Timer() as t:
        land_files([engine], landing, routed, run_id, revision, workers=workers)
    return t.seconds


def bench_duckdb(landing: Path, work: Path, workers: int | None) -> dict:
    engine = DuckDBEngine(work / "loader.duckdb")
    prepare_engine(engine)
    first = land_all(engine, landing, workers)
    again = land_all(engine, landing, workers)
    rows = engine.fetchone("select count(*) from raw.app_events")[0]
    parquet = work / "rows.parquet"
    engine.con.execute(f"copy (select * from {engine.sql('raw.app_events')}) to '{parquet}' (format parquet)")
    engine.close()
    bare = duckdb.connect(str(work / "bare.duckdb"))
    bare.execute("create schema raw")
    bare.execute(RAW_TABLE_DDL)
    with Timer() as t:
        bare.execute(f"insert into raw.app_events select * from read_parquet('{parquet}')")
    # The bare path: DuckDB's own JSON reader, a SHA-256 key per row, insert into a primary-key table.
    bare.execute("create table raw.bare_json (idempotency_key varchar primary key, event_id varchar, "
                 "user_id bigint, event_ts timestamp, event_type varchar, value decimal(18,2), "
                 "app_version varchar, properties varchar)")
    files = [p.as_posix() for p in sorted((landing / "app_events").rglob("*.jsonl"))]
    with Timer() as json_path:
        bare.execute(
            "insert or ignore into raw.bare_json select sha256(concat_ws(chr(31), user_id::varchar, "
            "strftime(event_ts, '%Y-%m-%dT%H:%M:%S.%fZ'), event_type, event_id)), event_id, user_id, event_ts, "
            "event_type, value, app_version, properties::varchar from read_json(?, format = 'newline_delimited', "
            "columns = {event_id: 'VARCHAR', user_id: 'BIGINT', event_ts: 'TIMESTAMPTZ', event_type: 'VARCHAR', "
            "value: 'DECIMAL(18,2)', app_version: 'VARCHAR', properties: 'JSON'})", [files])
    bare.close()
    return {"rows": rows, "loader_s": first, "bare_insert_s": t.seconds, "ratio": round(first / t.seconds, 2),
            "bare_read_json_sha256_s": json_path.seconds,
            "ratio_to_read_json_path": round(first / json_path.seconds, 2),
            "reland_s": again, "reland_share_of_first": round(again / first, 4)}


def bench_postgres(landing: Path, work: Path, dsn: str, workers: int | None) -> dict:
    with psycopg.connect(dsn, autocommit=True) as admin:
        for schema in ("raw", "evident", "bare"):
            admin.execute(f"drop schema if exists {schema} cascade")
    engine = PostgresEngine(dsn)
    prepare_engine(engine)
    first = land_all(engine, landing, workers)
    again = land_all(engine, landing, workers)
    rows = engine.fetchone("select count(*) from raw.app_events")[0]
    csv_path = work / "rows.csv"
    with open(csv_path, "wb") as out, engine.con.cursor().copy("copy raw.app_events to stdout (format csv)") as cp:
        for chunk in cp:
            out.write(chunk)
    engine.close()
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute("create schema bare")
        con.execute(RAW_TABLE_DDL.replace("raw.app_events", "bare.app_events"))
        with Timer() as t:
            with con.cursor().copy("copy bare.app_events from stdin (format csv)") as cp, open(csv_path, "rb") as f:
                while chunk := f.read(1 << 20):
                    cp.write(chunk)
    return {"rows": rows, "loader_s": first, "bare_copy_s": t.seconds, "ratio": round(first / t.seconds, 2),
            "reland_s": again, "reland_share_of_first": round(again / first, 4)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--workers", type=int, default=None,
                        help="validation worker processes (default: as `evident land` decides by input size)")
    args = parser.parse_args(argv)
    landing = sample_dir(args.events, args.days)
    work = Path(tempfile.mkdtemp(prefix="evident-bench-"))
    files = [path for _, path in route(load_sources(find_project()), landing).ordered()]
    try:
        result = {"events": args.events, "files": len(files), "cores": os.cpu_count(),
                  "validation_workers": prepare_workers(files, args.workers),
                  "targets": {"loader_vs_bare_max_ratio": 1.5, "reland_max_share": 0.05},
                  "duckdb": bench_duckdb(landing, work, args.workers)}
        if not args.no_postgres:
            with postgres_dsn() as dsn:
                result["postgres"] = bench_postgres(landing, work, dsn, args.workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_result("landing", result)
    return result


if __name__ == "__main__":
    main()
