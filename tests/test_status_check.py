"""`evident status --check`: each exit code in the situation that calls for it — healthy 0; the last run failed,
a rejected batch unresolved, data older than the limit 1; a run holding the lock far longer than usual 75 —
idle and while another run is in progress. Real DuckDB files, real Postgres, real `evident` processes; the run
in progress is a real `evident gate` held still at a fault point (or, for a start time hours ago, a real
RunLock in another process)."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from evident.config import Settings
from evident.errors import ConfigError
from evident.health import FLOOR_S, RunRow, parse_duration, usual_limit
from evident.sample import generate_sample
from evident.status import dbt_freshness_config
from tests.helpers import REPO, env_for, make_project, project_settings, run_cli

GOOD = '{"event_id": "e%d", "user_id": %d, "event_ts": "2026-01-0%dT10:00:00Z", "event_type": "login"}\n'


@pytest.fixture(params=["duckdb", "postgres"])
def settings(request, tmp_path: Path) -> Settings:
    dsn = request.getfixturevalue("fresh_pg_dsn") if request.param == "postgres" else None
    settings = project_settings(make_project(tmp_path / "project"), dsn)
    settings.landing_dir.mkdir(parents=True)
    return settings


@pytest.fixture
def pg_settings(tmp_path: Path, fresh_pg_dsn: str) -> Settings:
    settings = project_settings(make_project(tmp_path / "project"), fresh_pg_dsn)
    settings.landing_dir.mkdir(parents=True)
    return settings


def check(settings: Settings, *args: str) -> tuple[int, dict]:
    result = run_cli(settings, "status", "--check", "--json", *args, timeout=120)
    assert result.returncode in (0, 1, 75), result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["health"]["exit_code"] == result.returncode
    return result.returncode, report


def problems(report: dict) -> list[str]:
    return [p["check"] for p in report["health"]["problems"]]


def land(settings: Settings, expect: int = 0) -> None:
    result = run_cli(settings, "land")
    assert result.returncode == expect, result.stdout + result.stderr


def deliver(settings: Settings, name: str, text: str) -> Path:
    path = settings.landing_dir / "app_events" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def rejected_file(settings: Settings, name: str = "bad.jsonl") -> Path:
    """Half its lines malformed: far over max_quarantine_share (5%), so the whole batch is rejected."""
    return deliver(settings, name, "".join(GOOD % (i, i + 1, 1 + i % 5) + "{not json\n" for i in range(10)))


def good_file(settings: Settings, name: str, first: int = 100) -> Path:
    return deliver(settings, name, "".join(GOOD % (i, i + 1, 1 + i % 5) for i in range(first, first + 10)))


@contextlib.contextmanager
def run_in_progress(settings: Settings) -> Iterator[subprocess.Popen]:
    """A real `evident gate` holding the run lock (and, as every run does, the DuckDB file and on Postgres the
    advisory lock) while it sleeps at its first fault point; killed afterwards, like a stuck run."""
    proc = subprocess.Popen([sys.executable, "-m", "evident.cli", "gate"],
                            env=env_for(settings, EVIDENT_FAULT="gate.before:sleep=300"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=settings.project.root)
    try:
        deadline = time.monotonic() + 90
        while True:  # until it holds the lock and the DuckDB file, and its run is recorded
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never got going"
            status = run_cli(settings, "status", "--json", timeout=60)
            assert status.returncode == 0, status.stderr
            engines = {e["engine"]: e for e in json.loads(status.stdout)}
            running = engines["duckdb"].get("run_in_progress") or {}
            recorded = not settings.postgres_dsn or ("run_id" in running and _recorded(settings, running["run_id"]))
            if running and engines["duckdb"].get("busy") and recorded:
                break
            time.sleep(0.2)
        yield proc
    finally:
        proc.kill()
        proc.communicate()


def _recorded(settings: Settings, run_id: str) -> bool:
    with psycopg.connect(settings.postgres_dsn) as con:
        return con.execute("select count(*) from evident.runs where run_id = %s", [run_id]).fetchone()[0] == 1


@contextlib.contextmanager
def lock_held_since(settings: Settings, started: datetime) -> Iterator[None]:
    """Another process holding the real RunLock (file + Postgres advisory lock) with a start time in the past,
    its run recorded as running — what a run that started then and never ended leaves."""
    script = textwrap.dedent(f"""
        import sys
        from datetime import datetime
        from evident.config import load_settings
        from evident.control.lock import RunLock
        from evident.control.runs import start_run
        from evident.engines import PostgresEngine
        settings = load_settings()
        lock = RunLock(settings.duckdb_path, settings.postgres_dsn, "{started:%Y%m%dT%H%M%S}-feed00", "run")
        lock.holder["started_at"] = "{started.isoformat()}Z"
        with lock:
            if settings.postgres_dsn:
                pg = PostgresEngine(settings.postgres_dsn)
                start_run(pg, "{started:%Y%m%dT%H%M%S}-feed00", "run", "test")
                pg.execute("update evident.runs set started_at = %s where run_id = %s",
                           [datetime.fromisoformat("{started.isoformat()}"), "{started:%Y%m%dT%H%M%S}-feed00"])
                pg.close()
            print("held", flush=True)
            sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env=env_for(settings), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n", proc.communicate()
        yield
    finally:
        proc.kill()
        proc.communicate()


# ------------------------------------------------------------------------------------------ idle


def test_healthy_after_a_clean_run_then_stale_past_max_age(settings):
    generate_sample(settings.landing_dir, events=200, days=2, seed=5)
    result = run_cli(settings, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    code, report = check(settings)
    assert (code, problems(report)) == (0, [])
    assert report["run_in_progress"] is None
    facts = report["engines"][0]
    assert facts["engine"] == ("postgres" if settings.postgres_dsn else "duckdb")
    assert facts["last_run"]["status"] == "succeeded" and facts["last_run"]["command"] == "run"
    assert facts["last_successful_run"]["run_id"] == facts["last_run"]["run_id"]
    assert facts["last_gate"]["success"] is True and facts["last_gate"]["failed_suites"] == []
    assert facts["last_reconciliation"]["status"] == ("matched" if settings.postgres_dsn else "skipped")
    assert facts["unresolved_failures"] == [] and facts["files_waiting"] == 0
    app = facts["sources"]["app_events"]
    assert app["freshness"]["status"] == "pass" and app["freshness"]["error_after_s"] == 72 * 3600
    assert app["newest_partition"] >= "2026-01-01" and app["newest_landed_age_s"] < 600
    time.sleep(1.2)
    code, report = check(settings, "--max-age", "1s")
    assert code == 1 and problems(report) == ["stale"]  # orders never landed: noted, not stale
    assert "orders: nothing landed yet" in report["health"]["notes"]
    assert "app_events: newest data landed" in report["health"]["problems"][0]["message"]
    assert check(settings, "--max-age", "1h")[0] == 0
    text = run_cli(settings, "status", "--check")
    assert text.returncode == 0 and "health: healthy (exit 0)" in text.stdout and "last gate: run" in text.stdout


def test_a_failed_last_run_exits_1_until_a_later_run_succeeds(settings):
    generate_sample(settings.landing_dir, events=100, days=1, seed=6)
    land(settings)
    crashed = run_cli(settings, "gate", EVIDENT_FAULT="gate.before:raise")
    assert crashed.returncode == 70, crashed.stderr
    code, report = check(settings)
    assert code == 1 and problems(report) == ["last_run"]
    message = report["health"]["problems"][0]["message"]
    assert "(gate" in message and "failed: injected fault at gate.before" in message
    land(settings)  # nothing new, but a run that succeeded
    assert check(settings)[0] == 0


def test_a_killed_run_that_never_finished_counts_as_failed(settings):
    generate_sample(settings.landing_dir, events=100, days=1, seed=7)
    land(settings)
    killed = run_cli(settings, "gate", EVIDENT_FAULT="gate.before:kill")
    assert killed.returncode == -9
    code, report = check(settings)
    assert code == 1 and problems(report) == ["last_run"]
    assert "never finished" in report["health"]["problems"][0]["message"]
    assert report["run_in_progress"] is None  # its lock died with it


def test_a_rejected_batch_is_unresolved_until_redelivered_or_removed(settings):
    good_file(settings, "a.jsonl")
    bad = rejected_file(settings)
    land(settings, expect=1)
    land(settings, expect=0)  # the next run skips the rejected file and exits 0 ...
    code, report = check(settings)
    assert code == 1 and problems(report) == ["unresolved_batch"]  # ... the health check does not
    facts = report["engines"][0]
    assert [f["source_file"] for f in facts["unresolved_failures"]] == ["app_events/bad.jsonl"]
    assert facts["files_waiting"] == 0  # the rejected content is not "waiting"
    good_file(settings, "bad.jsonl", first=500)  # fixed and redelivered under the same path
    code, report = check(settings)
    assert code == 1 and report["engines"][0]["files_waiting"] == 1  # not resolved until it has landed
    land(settings)
    assert check(settings)[0] == 0
    rejected_file(settings, "worse.jsonl")
    land(settings, expect=1)
    assert check(settings)[0] == 1
    (settings.landing_dir / "app_events" / "worse.jsonl").unlink()  # given up on: removed
    code, report = check(settings)
    assert code == 1 and problems(report) == ["last_run"]  # resolved; the run that rejected it failed, though
    land(settings)
    assert check(settings)[0] == 0
    assert bad.exists()


def test_a_lock_held_far_longer_than_the_usual_runs_exits_75(settings):
    generate_sample(settings.landing_dir, events=100, days=1, seed=8)
    for _ in range(3):  # a history of short successful runs: the limit is the floor
        land(settings)
    with lock_held_since(settings, datetime.utcnow() - timedelta(seconds=FLOOR_S / 2)):
        code, report = check(settings)
        assert (code, problems(report)) == (0, [])  # in progress for a while, but not yet far too long
        assert report["run_in_progress"]["command"] == "run"
    with lock_held_since(settings, datetime.utcnow() - timedelta(hours=2)):
        code, report = check(settings)
        assert code == 75 and problems(report) == ["long_run"]
        assert "far longer than usual" in report["health"]["problems"][0]["message"]
        assert "no successful `run` runs recorded yet" in report["run_in_progress"]["limit_basis"]  # only lands
        rejected_file(settings)
        land(settings, expect=75)  # (the lock is held: the land cannot run)
    land(settings, expect=1)
    land(settings)  # the last run succeeded; the rejected batch stays unresolved
    with lock_held_since(settings, datetime.utcnow() - timedelta(hours=2)):
        code, report = check(settings)
        assert code == 1 and problems(report) == ["long_run", "unresolved_batch"]  # a failure outranks a wait


# ------------------------------------------------------------------------------------------ while a run runs


@pytest.mark.postgres
@pytest.mark.parametrize("situation, expected", [
    ("healthy", (0, [])),
    ("failed last run", (1, ["last_run"])),
    ("unresolved rejected batch", (1, ["unresolved_batch"])),
    ("stale data", (1, ["stale"])),
    ("long-held lock", (75, ["long_run"])),
])
def test_each_exit_code_while_another_run_is_in_progress(pg_settings, situation, expected):
    settings = pg_settings
    generate_sample(settings.landing_dir, events=100, days=1, seed=9)
    land(settings)
    args: tuple[str, ...] = ()
    if situation == "failed last run":
        assert run_cli(settings, "gate", EVIDENT_FAULT="gate.before:raise").returncode == 70
    elif situation == "unresolved rejected batch":
        rejected_file(settings)
        land(settings, expect=1)
        land(settings)
    elif situation == "stale data":
        time.sleep(1.2)
        args = ("--max-age", "1s")
    elif situation == "long-held lock":
        args = ("--max-run", "1s")
    with run_in_progress(settings):
        if situation == "long-held lock":
            time.sleep(1.2)
        code, report = check(settings, *args)
        assert (code, problems(report)) == expected, report["health"]
        running = report["run_in_progress"]
        assert running["command"] == "gate" and running["age_s"] >= 0
        assert [e["engine"] for e in report["engines"]] == ["postgres", "duckdb"]
        assert report["engines"][1]["busy"].startswith("the file is held open by another process")
        if situation != "failed last run":
            assert report["engines"][0]["last_run"]["status"] == "succeeded"  # the run in progress is not "last"
        text = run_cli(settings, "status")
        assert text.returncode == 0 and f"run in progress: {running['run_id']} (gate" in text.stdout
        assert "[duckdb] busy: the file is held open" in text.stdout


def test_duckdb_only_while_a_run_holds_the_file_is_undecided_75(tmp_path):
    settings = project_settings(make_project(tmp_path / "project"))
    generate_sample(settings.landing_dir, events=100, days=1, seed=10)
    land(settings)
    with run_in_progress(settings):
        started = time.monotonic()
        code, report = check(settings)
        assert time.monotonic() - started < 30
        assert code == 75 and problems(report) == ["undecided"]
        assert "cannot be read while the run in progress holds the warehouse" in \
            report["health"]["problems"][0]["message"]
        plain = run_cli(settings, "status")
        assert plain.returncode == 0 and "run in progress:" in plain.stdout and "(gate" in plain.stdout
    code, report = check(settings)
    assert code == 1 and problems(report) == ["last_run"]  # the killed gate never finished


def test_status_creates_nothing_and_leaves_the_lock_alone_during_a_run(tmp_path):
    settings = project_settings(make_project(tmp_path / "project"))
    generate_sample(settings.landing_dir, events=100, days=1, seed=11)
    land(settings)

    def tree() -> dict[str, float]:
        return {str(p): p.stat().st_mtime for p in settings.project.root.rglob("*") if p.is_file()}

    before = tree()
    assert run_cli(settings, "status", "--check").returncode == 0
    assert tree() == before
    with run_in_progress(settings) as proc:
        during = tree()
        lock = Path(f"{settings.duckdb_path}.lock").read_text()
        for _ in range(3):
            assert run_cli(settings, "status", "--check", "--json").returncode == 75
        assert tree() == during and Path(f"{settings.duckdb_path}.lock").read_text() == lock
        assert proc.poll() is None  # the run was not disturbed


# ------------------------------------------------------------------------------------------ the pieces


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("15m", 900), ("15min", 900), ("2h", 7200),
                                           ("1h30m", 5400), ("3d", 259200), ("1w", 604800), ("0.5h", 1800)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "5x", "-5m", "1h-"])
def test_a_bad_duration_is_a_usage_error(text, tmp_path):
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration(text)
    settings = project_settings(make_project(tmp_path / "project"))
    result = run_cli(settings, "status", "--check", "--max-age", text or "''")
    assert result.returncode == 2 and "not a duration" in result.stderr


def test_the_usual_limit_is_3x_the_median_of_its_kind_with_a_floor():
    t0 = datetime(2026, 1, 1)

    def run(i: int, minutes: float, full: bool, status: str = "succeeded", command: str = "run") -> RunRow:
        start = t0 + timedelta(hours=i)
        return RunRow(f"r{i}", command, start, start + timedelta(minutes=minutes), status, full)

    history = [run(0, 1, False), run(1, 2, False), run(2, 3, False), run(3, 40, True), run(4, 50, True),
               run(5, 500, False, "failed"), run(6, 900, False, command="land")]
    assert usual_limit(history, "run", False).limit_s == FLOOR_S  # 3 × 2 min is under the floor
    assert usual_limit(history, "run", True).limit_s == 3 * 45 * 60
    assert usual_limit(history, "run", None).limit_s == 3 * 45 * 60  # kind not known yet: the longer one
    assert usual_limit(history, "land", None).limit_s == 3 * 900 * 60
    assert usual_limit([], "run", None).limit_s == FLOOR_S


def test_freshness_comes_from_the_dbt_sources():
    config = dbt_freshness_config(REPO / "dbt_project")
    assert config["app_events"] == {"loaded_at_field": "landed_at", "warn_after_s": 24 * 3600.0,
                                    "error_after_s": 72 * 3600.0}
    assert set(config) >= {"app_events", "orders"}


def test_status_help_documents_the_check(tmp_path):
    result = subprocess.run([sys.executable, "-m", "evident.cli", "status", "--help"], capture_output=True,
                            text=True, env={**os.environ, "EVIDENT_PROJECT_DIR": str(REPO)})
    assert result.returncode == 0
    for option in ("--check", "--max-age", "--max-run", "--json"):
        assert option in result.stdout


def test_health_checks_running_all_the_time_never_make_a_run_fail(tmp_path):
    """status never takes the lock, so a run starting beside it is not refused; at most it waits out
    status's brief read-only open of the DuckDB file (a transient fault, retried)."""
    settings = project_settings(make_project(tmp_path / "project"))
    settings.landing_dir.mkdir(parents=True)
    stop = threading.Event()
    checks: list[int] = []

    def keep_checking() -> None:
        while not stop.is_set():
            checks.append(run_cli(settings, "status", "--check", timeout=120).returncode)

    land(settings)  # a warehouse to read
    checker = threading.Thread(target=keep_checking)
    checker.start()
    try:
        for i in range(4):
            good_file(settings, f"d{i}.jsonl", first=1000 * (i + 1))
            land(settings)  # exit 0 every time: never refused because a check was looking
    finally:
        stop.set()
        checker.join()
    assert len(checks) >= 2 and set(checks) <= {0, 75}  # 75: a check that met a land holding the file
    assert check(settings)[0] == 0
