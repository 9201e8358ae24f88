"""Landing benchmark: `evident land` of one N-event JSONL file against the bare database paths, same run.

Measured, each on a fresh warehouse:
- Evident into DuckDB only, then the same file again (the re-land);
- DuckDB's own path (the issue's floor): `read_json` + a `sha256` key per row + insert into a primary-key table;
- the bare bulk paths: one Postgres COPY of the landed rows into a table with the same primary key, one DuckDB
  INSERT of them (from Parquet) into a table with the same primary key;
- Evident into DuckDB and Postgres at once, then the re-land;
- peak RSS of landing a file of N lines and one of 5N lines, each in a fresh process, per engine: the landing
  process itself and its largest validation worker. (DuckDB runs inside the landing process: its primary-key
  index of the batch's keys is part of that process's memory, as it is on DuckDB's own path.)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import psycopg

from evident.control.runs import new_run_id
from evident.engines import DuckDBEngine, Engine, PostgresEngine
from evident.land.contracts import load_contract
from evident.land.loader import land_files, prepare_workers
from evident.land.raw_tables import RawTable
from evident.pipeline.context import prepare_engine

from .common import CACHE, Timer, postgres_dsn, sample_dir, write_result

CONTRACT = load_contract("app_events", 1)
RAW_TABLE_DDL = RawTable(CONTRACT).ddl()[1]
TARGETS = {"duckdb_vs_read_json_path_max": 1.5, "both_vs_bare_sum_max": 1.5, "reland_max_share": 0.05,
           "rss_5x_lines_max_growth": 0.2}


def one_file(events: int, copies: int = 1) -> Path:
    """A landing dir holding one JSONL file: the N-event sample's files end to end; `copies` > 1 repeats them
    with event ids made distinct per copy (copies × N distinct events, the same shape)."""
    landing = CACHE / f"one-file-{events}x{copies}"
    path = landing / "app_events" / "all.jsonl"
    if not path.exists():
        files = sorted((sample_dir(events, 10) / "app_events").rglob("*.jsonl"))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with open(partial, "wb") as out:
            for copy in range(copies):
                for file in files:
                    data = file.read_bytes()
                    out.write(data if copy == 0 else data.replace(b'"event_id":"', f'"event_id":"c{copy}-'.encode()))
        partial.rename(path)
    return landing


def land(engines: list[Engine], landing: Path, workers: int | None) -> float:
    """What `evident land` does with the file."""
    routed = [(path, CONTRACT) for path in sorted(landing.rglob("*.jsonl"))]
    with Timer() as t:
        outcomes = land_files(engines, landing, routed, new_run_id(), "bench", workers=workers)
    assert {o.status for o in outcomes} <= {"landed", "unchanged"}, outcomes
    return t.seconds


def fresh_postgres(dsn: str) -> PostgresEngine:
    with psycopg.connect(dsn, autocommit=True) as admin:
        for schema in ("raw", "evident", "bare"):
            admin.execute(f"drop schema if exists {schema} cascade")
    engine = PostgresEngine(dsn)
    prepare_engine(engine)
    return engine


def fresh_duckdb(path: Path) -> DuckDBEngine:
    for stale in (path, path.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    engine = DuckDBEngine(path)
    prepare_engine(engine)
    return engine


def bench_duckdb_only(landing: Path, work: Path, workers: int | None) -> tuple[dict, Path]:
    engine = fresh_duckdb(work / "loader.duckdb")
    first = land([engine], landing, workers)
    again = land([engine], landing, workers)
    rows = engine.fetchvalue("select count(*) from raw.app_events")
    parquet = work / "rows.parquet"
    engine.con.execute(f"copy (select * from {engine.sql('raw.app_events')}) to '{parquet}' (format parquet)")
    engine.close()
    bare = duckdb.connect(str(work / "bare.duckdb"))
    bare.execute("create schema raw")
    bare.execute("create table raw.bare_json (idempotency_key varchar primary key, event_id varchar, "
                 "user_id bigint, event_ts timestamp, event_type varchar, value decimal(18,2), "
                 "app_version varchar, properties varchar)")
    with Timer() as json_path:  # the floor: DuckDB reads, keys and inserts the file itself
        bare.execute(
            "insert or ignore into raw.bare_json select sha256(concat_ws(chr(31), user_id::varchar, "
            "strftime(event_ts, '%Y-%m-%dT%H:%M:%S.%fZ'), event_type, event_id)), event_id, user_id, event_ts, "
            "event_type, value, app_version, properties::varchar from read_json(?, format = 'newline_delimited', "
            "columns = {event_id: 'VARCHAR', user_id: 'BIGINT', event_ts: 'TIMESTAMPTZ', event_type: 'VARCHAR', "
            "value: 'DECIMAL(18,2)', app_version: 'VARCHAR', properties: 'JSON'})",
            [[p.as_posix() for p in sorted(landing.rglob("*.jsonl"))]])
    bare.execute(RAW_TABLE_DDL)
    with Timer() as insert:
        bare.execute(f"insert into raw.app_events select * from read_parquet('{parquet}')")
    bare.close()
    return {"rows": rows, "evident_s": first, "read_json_sha256_pk_insert_s": json_path.seconds,
            "bare_insert_s": insert.seconds, "ratio_to_read_json_path": round(first / json_path.seconds, 2),
            "reland_s": again, "reland_share_of_first": round(again / first, 4)}, parquet


def bare_postgres_copy(dsn: str, work: Path, parquet: Path) -> float:
    """COPY of the landed rows (CSV) into a table with the same primary key."""
    csv_path = work / "rows.csv"
    duckdb.connect().execute(f"copy (select * from read_parquet('{parquet}')) to '{csv_path}' "
                             "(format csv, header false)")
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute("drop schema if exists bare cascade")
        con.execute("create schema bare")
        con.execute(RAW_TABLE_DDL.replace("raw.app_events", "bare.app_events"))
        with Timer() as t:
            with con.cursor().copy("copy bare.app_events from stdin (format csv)") as cp, open(csv_path, "rb") as f:
                while block := f.read(1 << 20):
                    cp.write(block)
        con.execute("drop schema bare cascade")
    return t.seconds


def bench_both(landing: Path, work: Path, dsn: str, workers: int | None) -> dict:
    engines: list[Engine] = [fresh_postgres(dsn), fresh_duckdb(work / "both.duckdb")]
    try:
        first = land(engines, landing, workers)
        again = land(engines, landing, workers)
        rows = {e.name: e.fetchvalue("select count(*) from raw.app_events") for e in engines}
    finally:
        for engine in engines:
            engine.close()
    return {"rows": rows, "evident_s": first, "reland_s": again, "reland_share_of_first": round(again / first, 4)}


def peak_rss(landing: Path, engine: str, dsn: str | None, workers: int | None) -> dict:
    """Land the file in a fresh process; its peak RSS and its largest worker's (MiB)."""
    command = [sys.executable, "-m", "benchmarks.bench_landing", "--rss-child", str(landing), "--engine", engine]
    if workers is not None:
        command += ["--workers", str(workers)]
    env = {**os.environ, **({"EVIDENT_BENCH_CHILD_DSN": dsn} if dsn else {})}
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def rss_child(landing: Path, engine_name: str, workers: int | None) -> None:
    work = Path(tempfile.mkdtemp(prefix="evident-rss-"))
    try:
        engine: Engine = fresh_postgres(os.environ["EVIDENT_BENCH_CHILD_DSN"]) if engine_name == "postgres" \
            else fresh_duckdb(work / "rss.duckdb")
        seconds = land([engine], landing, workers)
        engine.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"seconds": seconds, "process_mib": _peak_rss_mib(),
                      "largest_worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024}))


def _peak_rss_mib() -> int:
    """This process's own peak RSS (VmHWM): ru_maxrss would report the benchmark's, inherited through fork."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def memory(events: int, dsn: str | None, workers: int | None) -> dict:
    small, big = one_file(events), one_file(events, copies=5)
    result = {}
    for engine in ["postgres", "duckdb"] if dsn else ["duckdb"]:
        a, b = peak_rss(small, engine, dsn, workers), peak_rss(big, engine, dsn, workers)
        result[engine] = {f"{events}_lines": a, f"{5 * events}_lines": b,
                          "process_growth": round(b["process_mib"] / a["process_mib"] - 1, 3),
                          "worker_growth": round(b["largest_worker_mib"] / a["largest_worker_mib"] - 1, 3)
                          if a["largest_worker_mib"] else None}
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-memory", action="store_true", help="skip the 5× file peak-RSS comparison")
    parser.add_argument("--workers", type=int, default=None,
                        help="validation worker processes (default: as `evident land` decides by input size)")
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="duckdb", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        rss_child(args.rss_child, args.engine, args.workers)
        return {}
    landing = one_file(args.events)
    work = Path(tempfile.mkdtemp(prefix="evident-bench-"))
    files = sorted(landing.rglob("*.jsonl"))
    try:
        result: dict = {"events_file": files[0].relative_to(landing).as_posix(), "lines": args.events,
                        "bytes": files[0].stat().st_size, "cores": os.cpu_count(),
                        "validation_workers": prepare_workers(files, args.workers), "targets": TARGETS}
        result["duckdb_only"], parquet = bench_duckdb_only(landing, work, args.workers)
        if not args.no_postgres:
            with postgres_dsn() as dsn:
                bare_copy = bare_postgres_copy(dsn, work, parquet)
                both = bench_both(landing, work, dsn, args.workers)
                bare_sum = bare_copy + result["duckdb_only"]["bare_insert_s"]
                result["both_engines"] = {**both, "bare_postgres_copy_s": bare_copy, "bare_sum_s": round(bare_sum, 3),
                                          "ratio_to_bare_sum": round(both["evident_s"] / bare_sum, 2)}
                if not args.no_memory:
                    result["peak_rss"] = memory(args.events, dsn, args.workers)
        elif not args.no_memory:
            result["peak_rss"] = memory(args.events, None, args.workers)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_result("landing", result)
    return result


if __name__ == "__main__":
    main()
