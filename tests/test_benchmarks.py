"""`make bench` runs end to end: every benchmark at a tiny scale (BENCH_SCALE), on both engines, writes its JSON.

The figures at this size mean nothing; what is checked is that each benchmark still runs against the code it
measures (an earlier change to bench_dbt's history generator broke bench_gate, unnoticed until a full run)
and that the results carry the fields the issues' targets are read from.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from evident.project import find_project


@pytest.mark.postgres
def test_make_bench_runs_every_benchmark_and_writes_its_results(tmp_path, fresh_pg_dsn):
    env = {**os.environ, "BENCH_SCALE": "0.0005", "EVIDENT_BENCH_POSTGRES_DSN": fresh_pg_dsn,
           "EVIDENT_BENCH_RESULTS": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "benchmarks.run"], cwd=find_project().root, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    results = {path.stem: json.loads(path.read_text()) for path in tmp_path.glob("*.json")}
    assert set(results) == {"landing", "dbt_incremental", "gate", "reconcile"}

    landing = results["landing"]
    assert {"ratio_to_read_json_path", "reland_share_of_first"} <= set(landing["duckdb_only"])
    assert "ratio_to_bare_sum" in landing["both_engines"]
    assert {"process_growth"} <= set(landing["peak_rss"]["duckdb"]) & set(landing["peak_rss"]["postgres"])

    for shape in ("uniform", "skewed"):
        for engine in ("duckdb", "postgres"):
            run = results["dbt_incremental"][shape][engine]
            assert run["full_ok"] and run["incremental_ok"], (shape, engine)
            assert run["ratio"] > 0

    assert results["gate"]["gate_passed"]
    assert {"reconcile_vs_scans", "pinpoint_vs_scan"} <= set(results["reconcile"])
