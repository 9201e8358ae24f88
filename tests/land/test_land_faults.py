"""kill -9 at any moment, and concurrent runs: the raw rows always end up as one uninterrupted land's."""
from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from evident.sample import generate_sample
from tests.helpers import env_for, query, raw_rows, run_cli, settings_for

KILL_POINTS = [
    "land.postgres.validated", "land.postgres.mid_transaction", "land.postgres.before_commit", "land.after_postgres",
    "land.duckdb.validated", "land.duckdb.mid_transaction", "land.duckdb.before_commit", "land.after_duckdb",
]


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate_sample(out, events=4000, days=3, seed=5, defect_rate=0.01)
    return out


@pytest.fixture(scope="module")
def reference_rows(sample_dir, tmp_path_factory) -> list[tuple]:
    settings = settings_for(tmp_path_factory.mktemp("reference"))
    shutil.copytree(sample_dir, settings.landing_dir)
    assert run_cli(settings, "land").returncode == 0
    return raw_rows(settings, "duckdb")


def fresh_settings(tmp_path: Path, sample_dir: Path, dsn: str | None):
    settings = settings_for(tmp_path, dsn)
    shutil.copytree(sample_dir, settings.landing_dir)
    return settings


def assert_consistent(settings, reference_rows) -> None:
    for engine in settings.engines:
        assert raw_rows(settings, engine) == reference_rows, engine
        assert query(settings, engine, "select count(*) from evident.batches where state <> 'landed'") == [(0,)]
        dup = query(settings, engine, "select count(*) - count(distinct idempotency_key) from raw.app_events")
        assert dup == [(0,)]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_at_a_fault_point_then_rerun_lands_exactly_once(point, tmp_path, sample_dir, reference_rows,
                                                             fresh_pg_dsn):
    settings = fresh_settings(tmp_path, sample_dir, fresh_pg_dsn)
    killed = run_cli(settings, "land", EVIDENT_FAULT=f"{point}:kill")
    assert killed.returncode == -9, killed.stderr
    rerun = run_cli(settings, "land")
    assert rerun.returncode == 0, rerun.stderr
    assert_consistent(settings, reference_rows)


@pytest.mark.parametrize("seed", range(4))
def test_kill_at_a_random_moment_then_rerun_lands_exactly_once(seed, tmp_path, sample_dir, reference_rows,
                                                               request):
    dsn = request.getfixturevalue("fresh_pg_dsn") if seed % 2 else None
    settings = fresh_settings(tmp_path, sample_dir, dsn)
    delay = random.Random(seed).uniform(0.8, 3.5)
    proc = subprocess.Popen([sys.executable, "-m", "evident.cli", "land"], env=env_for(settings),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.kill()
    proc.wait()
    rerun = run_cli(settings, "land")
    assert rerun.returncode == 0, rerun.stderr
    assert_consistent(settings, reference_rows)


def _processes_with(marker: str) -> list[int]:
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            pass
    return found


def test_a_kill_while_workers_validate_leaves_no_worker_behind_and_the_rerun_is_exact(tmp_path, sample_dir,
                                                                                     reference_rows):
    settings = fresh_settings(tmp_path, sample_dir, None)
    marker = f"evident-test-{uuid.uuid4().hex}"
    killed = run_cli(settings, "land", EVIDENT_FAULT="land.duckdb.mid_transaction:kill", EVIDENT_LAND_WORKERS="2",
                     EVIDENT_TEST_MARKER=marker)
    assert killed.returncode == -9, killed.stderr
    deadline = time.monotonic() + 30
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_with(marker) == []  # the validation workers noticed and exited
    rerun = run_cli(settings, "land", EVIDENT_LAND_WORKERS="2")
    assert rerun.returncode == 0, rerun.stderr
    assert_consistent(settings, reference_rows)


def start_holding_the_lock(settings, seconds: float = 6, command: str = "land") -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "evident.cli", command],
                            env=env_for(settings, EVIDENT_FAULT=f"land.duckdb.validated:sleep={seconds}"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = Path(f"{settings.duckdb_path}.lock")
    deadline = time.monotonic() + 60
    while not (lock.exists() and lock.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None, "first run never took the lock"
        time.sleep(0.05)
    return proc


def test_a_second_land_exits_75_naming_the_holder(tmp_path, sample_dir, reference_rows):
    settings = fresh_settings(tmp_path, sample_dir, None)
    first = start_holding_the_lock(settings)
    second = run_cli(settings, "land")
    out, err = first.communicate(timeout=300)
    assert second.returncode == 75
    assert "holds the warehouse lock" in second.stderr and "pid" in second.stderr and "land" in second.stderr
    assert first.returncode == 0, err
    assert_consistent(settings, reference_rows)


def test_a_second_land_with_wait_runs_after_the_first(tmp_path, sample_dir, reference_rows):
    settings = fresh_settings(tmp_path, sample_dir, None)
    first = start_holding_the_lock(settings, seconds=3)
    second = run_cli(settings, "land", "--wait")
    first.communicate(timeout=300)
    assert (first.returncode, second.returncode) == (0, 0), second.stderr
    assert "unchanged" in second.stdout
    assert_consistent(settings, reference_rows)


def test_two_runs_at_once_one_exits_75_one_waits_and_the_result_equals_one_run(tmp_path, sample_dir):
    from tests.chaos import snapshot

    settings = fresh_settings(tmp_path / "concurrent", sample_dir, None)
    first = start_holding_the_lock(settings, seconds=8, command="run")
    refused = run_cli(settings, "run")
    waited = run_cli(settings, "run", "--wait", timeout=900)
    out, err = first.communicate(timeout=900)
    assert refused.returncode == 75, refused.stderr
    assert "holds the warehouse lock" in refused.stderr and "(run, pid " in refused.stderr
    assert (first.returncode, waited.returncode) == (0, 0), err + waited.stderr
    one = fresh_settings(tmp_path / "one", sample_dir, None)
    assert run_cli(one, "run", timeout=900).returncode == 0
    concurrent, single = snapshot(settings), snapshot(one)
    assert concurrent == single  # raw and published fingerprints, duplicate keys, batches not where they belong
    assert concurrent["duckdb"]["duplicate_keys"] == 0 and concurrent["duckdb"]["stuck"] == 0
    assert all(concurrent["duckdb"]["marts"].values())


@pytest.mark.postgres
def test_two_warehouses_sharing_one_postgres_never_interleave(tmp_path, sample_dir, reference_rows, fresh_pg_dsn):
    a = fresh_settings(tmp_path / "a", sample_dir, fresh_pg_dsn)
    b = fresh_settings(tmp_path / "b", sample_dir, fresh_pg_dsn)
    first = start_holding_the_lock(a)
    second = run_cli(b, "land")
    first.communicate(timeout=300)
    assert second.returncode == 75 and "Postgres run lock" in second.stderr and "evident land" in second.stderr
    assert first.returncode == 0
    assert raw_rows(a, "postgres") == reference_rows
