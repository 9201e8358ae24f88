"""One run at a time: `--wait` waits up to its timeout for the file lock and the Postgres advisory lock, then
exits 75 naming the holder."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import psycopg
import pytest
from click.testing import CliRunner

from evident.cli import _wait_option
from evident.control.lock import ADVISORY_KEY, DEFAULT_WAIT_S, RunLock, wait_seconds
from evident.errors import LockHeld
from evident.sample import generate_sample
from tests.helpers import env_for, make_project, project_settings, run_cli


def test_wait_values():
    assert wait_seconds(None) is None and wait_seconds(False) is None
    assert wait_seconds(True) == DEFAULT_WAIT_S == 6 * 3600
    assert wait_seconds(2.5) == 2.5 and wait_seconds(0) == 0


@pytest.mark.parametrize("args, expected", [
    ([], None), (["--wait"], DEFAULT_WAIT_S), (["--wait=30"], 30.0), (["--wait", "12"], 12.0),
    (["--wait-timeout", "5"], 5.0), (["--wait", "--wait-timeout", "7"], 7.0),
])
def test_the_wait_option(args, expected):
    seen = []

    @click.command()
    @_wait_option
    def command(wait):
        seen.append(wait)

    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    assert seen == [expected]


def test_a_waiting_lock_is_taken_as_soon_as_the_holder_lets_go(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    holder = RunLock(path, None, "r1", "land")
    holder.__enter__()
    threading.Timer(1.0, holder.__exit__, args=(None, None, None)).start()
    started = time.monotonic()
    with RunLock(path, None, "r2", "land", wait=30):
        waited = time.monotonic() - started
        assert json.loads(Path(f"{path}.lock").read_text())["run_id"] == "r2"
    assert 0.8 < waited < 10


def test_a_lock_held_past_the_timeout_raises_lock_held_naming_the_holder(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with RunLock(path, None, "holder-run", "build"):
        started = time.monotonic()
        with pytest.raises(LockHeld, match=r"still holds the warehouse lock .* after waiting 1 s: run holder-run "
                                           r"\(build, pid \d+"):
            with RunLock(path, None, "r2", "land", wait=1):
                pass
        assert 0.9 < time.monotonic() - started < 5
        with pytest.raises(LockHeld, match="holds the warehouse lock .*; try again later or pass --wait"):
            with RunLock(path, None, "r3", "land"):
                pass


def test_land_with_a_wait_timeout_exits_75_naming_the_running_holder(tmp_path):
    settings = project_settings(make_project(tmp_path / "project"))
    generate_sample(settings.landing_dir, events=100, days=1, seed=1)
    first = subprocess.Popen([sys.executable, "-m", "evident.cli", "land"],
                             env=env_for(settings, EVIDENT_FAULT="land.duckdb.validated:sleep=30"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock = Path(f"{settings.duckdb_path}.lock")
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text()):
            assert time.monotonic() < deadline and first.poll() is None, "the first run never took the lock"
            time.sleep(0.05)
        holder = json.loads(lock.read_text())
        started = time.monotonic()
        second = run_cli(settings, "land", "--wait=2")
        took = time.monotonic() - started
    finally:
        first.kill()
        first.communicate()
    assert second.returncode == 75, second.stderr
    assert 2 <= took < 30
    assert "still holds the warehouse lock" in second.stderr and "after waiting 2 s" in second.stderr
    assert f"run {holder['run_id']} (land, pid {holder['pid']}" in second.stderr
    assert "waiting for the warehouse lock" in second.stderr


@pytest.mark.postgres
def test_the_postgres_lock_is_waited_for_then_75_naming_the_holder(tmp_path, fresh_pg_dsn):
    settings = project_settings(make_project(tmp_path / "project"), fresh_pg_dsn)
    settings.landing_dir.mkdir(parents=True)
    with psycopg.connect(fresh_pg_dsn, autocommit=True, application_name="evident land run other-warehouse") as con:
        assert con.execute("select pg_try_advisory_lock(%s)", [ADVISORY_KEY]).fetchone()[0]
        result = run_cli(settings, "land", "--wait-timeout", "1.5")
        assert result.returncode == 75, result.stderr
        assert "still holds the Postgres run lock after waiting 1.5 s" in result.stderr
        assert "'evident land run other-warehouse'" in result.stderr
        # The file half was let go: the lock file holds no holder any more.
        assert Path(f"{settings.duckdb_path}.lock").read_text() == ""
        releaser = threading.Timer(1.0, lambda: con.execute("select pg_advisory_unlock(%s)", [ADVISORY_KEY]))
        releaser.start()
        waited = run_cli(settings, "land", "--wait=60")
        releaser.join()
    assert waited.returncode == 0, waited.stderr
    assert "no source files under the landing dir" in waited.stdout
