"""Database faults while dbt builds: a Postgres restart is retried, an outage past the retries exits 75."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from evident.sample import generate_sample
from tests.helpers import env_for, query, run_cli, settings_for


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate_sample(out, events=800, days=2, seed=5)
    return out


def landed_on(pg_cluster, tmp_path: Path, sample_dir: Path, name: str):
    with psycopg.connect(pg_cluster.dsn, autocommit=True) as con:
        con.execute(f"drop database if exists {name} with (force)")
        con.execute(f"create database {name}")
    settings = settings_for(tmp_path, pg_cluster.dsn_for(name))
    shutil.copytree(sample_dir, settings.landing_dir)
    landed = run_cli(settings, "land")
    assert landed.returncode == 0, landed.stderr
    return settings


def start_build(settings) -> subprocess.Popen:
    """`evident build` held for 5 s just before dbt starts; returns while it is held there."""
    proc = subprocess.Popen([sys.executable, "-m", "evident.cli", "build"],
                            env=env_for(settings, EVIDENT_FAULT="build.before_dbt:sleep=5"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with psycopg.connect(settings.postgres_dsn, autocommit=True) as con:
            # The step's own session (the run lock's session is named 'evident build run …').
            if con.execute("select count(*) from pg_stat_activity where application_name like 'evident build %' "
                           "and application_name not like 'evident build run %'").fetchone()[0]:
                time.sleep(1.5)  # past the run's set-up, well inside the 5 s hold
                return proc
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("evident build never connected")


@pytest.mark.postgres
def test_postgres_restarting_while_dbt_builds_is_retried_and_the_build_completes(pg_cluster, tmp_path, sample_dir):
    settings = landed_on(pg_cluster, tmp_path, sample_dir, "build_restart")
    proc = start_build(settings)
    pg_cluster.stop_server(mode="fast")
    time.sleep(5.0)  # dbt starts meanwhile and finds the server gone
    pg_cluster.start_server()
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "dbt build: transient fault" in err
    assert query(settings, "postgres", "select count(*) from evident.batches where state = 'built'") == \
        query(settings, "duckdb", "select count(*) from evident.batches where state = 'built'")


@pytest.mark.postgres
def test_postgres_down_for_the_whole_build_exits_75_and_a_rerun_builds(pg_cluster, tmp_path, sample_dir):
    settings = landed_on(pg_cluster, tmp_path, sample_dir, "build_down")
    proc = start_build(settings)
    pg_cluster.stop_server(mode="fast")
    try:
        out, err = proc.communicate(timeout=600)
    finally:
        pg_cluster.start_server()
    assert proc.returncode == 75, err
    assert "after 6 attempts" in err and "Traceback" not in err
    rerun = run_cli(settings, "build")
    assert rerun.returncode == 0, rerun.stderr
