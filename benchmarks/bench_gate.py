"""Gate benchmark: the time `evident gate` adds to a run, on DuckDB, for marts built from N events.

The history is generated inside DuckDB (as in bench_dbt), built by dbt, then validated by the committed GX
suites; the figure is the gate's wall time (GX import included) next to the dbt build it follows.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from evident.build.dbt import run_dbt_build
from evident.engines import DuckDBEngine
from evident.gate.runner import run_gate
from evident.land.raw_tables import raw_ddl
from evident.pipeline.context import prepare_engine
from evident.project import find_project

from .bench_dbt import history_sql
from .common import write_result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="evident-bench-gate-"))
    try:
        path = work / "warehouse.duckdb"
        with duckdb.connect(str(path)) as con:
            for statement in [*raw_ddl(), "create schema if not exists evident"]:
                con.execute(statement)
            con.execute(history_sql("duckdb", 0, args.events, max(args.events // 10, 1), 1, new=False))
        build = run_dbt_build("duckdb", duckdb_path=path, pg_dsn=None, full_refresh=True, target_dir=work / "target")
        engine = DuckDBEngine(path)
        prepare_engine(engine)
        engine.release()
        started = time.perf_counter()
        report = run_gate([engine], "bench", [], store=False, project_dir=find_project().expectations_dir)
        gate_s = time.perf_counter() - started
        engine.close()
        result = {"events": args.events, "dbt_build_s": round(build.elapsed, 2), "gate_s": round(gate_s, 2),
                  "gx_import_s": round(report.import_s, 2), "checks": len(report.checks),
                  "gate_passed": report.success, "gate_share_of_build": round(gate_s / build.elapsed, 2)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_result("gate", result)
    return result


if __name__ == "__main__":
    main()
