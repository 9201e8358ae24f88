"""Database faults: Postgres going away mid-land, statement timeouts, a DuckDB file held by another process."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from evident.sample import generate_sample
from tests.helpers import env_for, raw_rows, run_cli, settings_for


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate_sample(out, events=1500, days=2, seed=9)
    return out


def database_on(pg_cluster, name: str) -> str:
    with psycopg.connect(pg_cluster.dsn, autocommit=True) as con:
        con.execute(f"drop database if exists {name} with (force)")
        con.execute(f"create database {name}")
    return pg_cluster.dsn_for(name)


def start_land(settings, fault: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "evident.cli", "land"],
                            env=env_for(settings, EVIDENT_FAULT=fault), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_postgres_restarting_mid_land_is_retried_and_the_land_completes(pg_cluster, tmp_path, sample_dir):
    settings = settings_for(tmp_path, database_on(pg_cluster, "fault_restart"))
    shutil.copytree(sample_dir, settings.landing_dir)
    proc = start_land(settings, "land.postgres.validated:sleep=2")
    time.sleep(1.0)
    pg_cluster.stop_server(mode="fast")
    time.sleep(1.5)
    pg_cluster.start_server()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "transient fault" in err
    assert raw_rows(settings, "postgres") == raw_rows(settings, "duckdb")


def test_postgres_down_longer_than_the_retries_exits_75_and_a_rerun_completes(pg_cluster, tmp_path, sample_dir):
    settings = settings_for(tmp_path, database_on(pg_cluster, "fault_down"))
    shutil.copytree(sample_dir, settings.landing_dir)
    proc = start_land(settings, "land.postgres.validated:sleep=2")
    time.sleep(1.0)
    pg_cluster.stop_server(mode="fast")
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        pg_cluster.start_server()
    assert proc.returncode == 75, err
    assert "after 6 attempts" in err and "Traceback" not in err
    rerun = run_cli(settings, "land")
    assert rerun.returncode == 0, rerun.stderr
    assert raw_rows(settings, "postgres") == raw_rows(settings, "duckdb")
    assert len(raw_rows(settings, "duckdb")) == 1500


def test_a_statement_timeout_is_retried_then_reported_as_temporary(pg_cluster, tmp_path, sample_dir):
    dsn = database_on(pg_cluster, "fault_timeout")
    settings = settings_for(tmp_path, dsn)
    shutil.copytree(sample_dir, settings.landing_dir)
    with psycopg.connect(pg_cluster.dsn, autocommit=True) as con:
        con.execute("alter database fault_timeout set statement_timeout = '1ms'")
    result = run_cli(settings, "land")
    assert result.returncode == 75, result.stderr
    assert "statement timeout" in result.stderr and "QueryCanceled" in result.stderr
    with psycopg.connect(pg_cluster.dsn, autocommit=True) as con:
        con.execute("alter database fault_timeout reset statement_timeout")
    rerun = run_cli(settings, "land")
    assert rerun.returncode == 0, rerun.stderr
    assert len(raw_rows(settings, "postgres")) == 1500


def test_a_duckdb_file_held_by_another_process_is_temporary_and_a_rerun_completes(tmp_path, sample_dir):
    settings = settings_for(tmp_path)
    shutil.copytree(sample_dir, settings.landing_dir)
    settings.duckdb_path.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c",
                               "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
                               "time.sleep(60)", str(settings.duckdb_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = run_cli(settings, "land")
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 75, result.stderr
    assert "Could not set lock" in result.stderr and "Traceback" not in result.stderr
    rerun = run_cli(settings, "land")
    assert rerun.returncode == 0, rerun.stderr
    assert len(raw_rows(settings, "duckdb")) == 1500
