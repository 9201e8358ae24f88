"""Logs a scheduler can ship (issue 14, part 3): under `--log-format json` every line a command prints, on stdout
and on stderr — Evident's own, dbt's and GX's — is one JSON object carrying the run id; `run --json` prints one
document with the same facts and numbers as the text summary. Real runs in a subprocess on DuckDB."""
from __future__ import annotations

import io
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from evident import logs
from evident.control.lock import RunLock
from evident.sample import generate_sample
from evident.samples.orders import generate_orders_sample
from evident.secrets import register_secret
from tests.helpers import make_project, project_settings, query, run_cli


@pytest.fixture
def settings(tmp_path: Path):
    return project_settings(make_project(tmp_path / "project"))


def json_lines(result: subprocess.CompletedProcess) -> list[dict]:
    """Every line of stdout and stderr parsed as one JSON object (the test fails naming a line that is not)."""
    entries = []
    for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                pytest.fail(f"a line on {stream} is not JSON: {line!r}")
            assert isinstance(entry, dict), line
            entries.append({**entry, "_stream": stream})
    return entries


def the_run_id(settings) -> str:
    [(run_id,)] = query(settings, "duckdb", "select run_id from evident.runs where command = 'run'")
    return run_id


def land_counts(settings) -> dict[str, int]:
    rows = {source: query(settings, "duckdb", f"select count(*) from raw.{source}")[0][0]
            for source in ("app_events", "orders")}
    return {"rows_landed": sum(rows.values())}


# ------------------------------------------------------------------------------------------ a real run, json logs

def test_every_line_of_a_json_run_is_one_json_object_carrying_the_run_id(settings):
    generate_sample(settings.landing_dir, events=300, days=2, seed=11)
    generate_orders_sample(settings.landing_dir, orders=40, days=2, seed=11)
    result = run_cli(settings, "--log-format", "json", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    entries = json_lines(result)
    run_id = the_run_id(settings)
    assert {e["run_id"] for e in entries} == {run_id}
    assert all(e["command"] == "run" and e["ts"] and e["level"] for e in entries)

    started = [e["step"] for e in entries if e.get("event") == "step_started"]
    finished = {e["step"]: e for e in entries if e.get("event") == "step_finished"}
    assert started == ["land", "build", "gate", "publish", "reconcile"] == list(finished)
    assert all(e["outcome"] == "succeeded" and e["duration_s"] >= 0 for e in finished.values())

    # One line per batch, with its id, as the control plane recorded it.
    batches = {e["batch_id"]: e for e in entries if e.get("event") == "batch"}
    recorded = query(settings, "duckdb", "select batch_id, source_file, rows_landed from evident.batches")
    assert {b: (e["source_file"], e["rows_landed"]) for b, e in batches.items()} == \
        {b: (f, n) for b, f, n in recorded}
    assert all(e["step"] == "land" and e["status"] == "landed" for e in batches.values())

    # The counts on the land step's line and in the summary are the rows in the warehouse.
    land = finished["land"]["land"]["duckdb"]
    assert land["rows_landed"] == land_counts(settings)["rows_landed"]
    [summary_line] = [e for e in entries if e.get("event") == "run_finished"]
    summary = summary_line["summary"]
    assert summary["run_id"] == run_id and summary["status"] == "succeeded" and summary["exit_code"] == 0
    assert summary["land"]["duckdb"] == land
    assert summary_line["message"].startswith(f"run {run_id} — land ")
    published = {p["table"]: p["rows"] for p in summary["publish"]}
    for table, rows in published.items():
        assert query(settings, "duckdb", f"select count(*) from {table}")[0][0] == rows
    assert set(published) >= {"published.fct_sessions", "published.fct_daily_metrics"}


def test_a_run_with_a_rejected_batch_logs_json_lines_naming_the_batch(settings):
    generate_sample(settings.landing_dir, events=300, days=1, seed=12, defect_rate=0.2)
    result = run_cli(settings, "--log-format", "json", "run")
    assert result.returncode == 1, result.stdout + result.stderr
    entries = json_lines(result)
    run_id = the_run_id(settings)
    assert {e["run_id"] for e in entries} == {run_id}
    [failed] = query(settings, "duckdb", "select batch_id from evident.batches where state = 'failed'")
    [batch] = [e for e in entries if e.get("event") == "batch"]
    assert batch["batch_id"] == failed[0] and batch["status"] == "rejected" and batch["level"] == "error"
    assert batch["rows_landed"] == 0 and batch["rows_quarantined"] > 0 and "5.0% limit" in batch["detail"]
    assert sum(batch["reasons"].values()) == batch["rows_quarantined"]
    [finished] = [e for e in entries if e.get("event") == "run_finished"]
    assert finished["level"] == "error" and finished["summary"]["exit_code"] == 1
    assert finished["summary"]["status"] == "failed"
    assert [r["batch_id"] for r in finished["summary"]["rejected"]] == [failed[0]]


def test_dbt_output_under_json_logs_is_wrapped_into_json_lines_with_the_run_id(settings):
    """A model that does not compile: dbt prints the error itself (on stdout); each of its lines becomes JSON."""
    model = settings.project.root / "dbt_project" / "models" / "marts" / "broken_model.sql"
    model.write_text("select no_such_column from {{ ref('stg_app_events') }}\n")
    generate_sample(settings.landing_dir, events=100, days=1, seed=13)
    result = run_cli(settings, "--log-format", "json", "run")
    assert result.returncode == 1, result.stdout + result.stderr
    entries = json_lines(result)
    run_id = the_run_id(settings)
    assert {e["run_id"] for e in entries} == {run_id}
    from_dbt = [e for e in entries if e["logger"] == "stdout" and e["event"] == "output"]
    assert any("broken_model" in e["message"] for e in from_dbt), from_dbt
    assert all(e["step"] == "build" for e in from_dbt)  # also the lines of dbt's worker threads
    assert not any("\x1b[" in e["message"] for e in from_dbt)
    [finished] = [e for e in entries if e.get("event") == "run_finished"]
    assert finished["summary"]["error"]["reason"] == "build_failed"


def test_a_failing_gate_under_json_logs_is_json_lines_with_the_run_id(settings):
    """Great Expectations validates for real and fails (a suite that allows at most one session)."""
    suite = settings.project.root / "expectations" / "gx" / "expectations" / "fct_sessions.json"
    definition = json.loads(suite.read_text())
    definition["expectations"].append({"id": "00000000-0000-4000-8000-000000000001", "meta": {},
                                       "severity": "critical", "type": "expect_table_row_count_to_be_between",
                                       "kwargs": {"min_value": 0, "max_value": 1}})
    suite.write_text(json.dumps(definition, indent=2))
    generate_sample(settings.landing_dir, events=200, days=1, seed=17)
    result = run_cli(settings, "--log-format", "json", "run")
    assert result.returncode == 1, result.stdout + result.stderr
    entries = json_lines(result)
    assert {e["run_id"] for e in entries} == {the_run_id(settings)}
    [finished] = [e for e in entries if e.get("event") == "run_finished"]
    assert finished["summary"]["error"]["reason"] == "gate_failed"
    assert "expect_table_row_count_to_be_between" in finished["summary"]["error"]["message"]
    assert [e["step"] for e in entries if e.get("event") == "step_finished" and e["outcome"] == "failed"] == ["gate"]


def test_land_under_json_logs_prints_one_line_per_batch_with_its_id(settings):
    generate_sample(settings.landing_dir, events=200, days=2, seed=18)
    result = run_cli(settings, "--log-format", "json", "land")
    assert result.returncode == 0, result.stdout + result.stderr
    entries = json_lines(result)
    [(run_id,)] = query(settings, "duckdb", "select run_id from evident.runs where command = 'land'")
    assert {e["run_id"] for e in entries} == {run_id} and {e["command"] for e in entries} == {"land"}
    batches = {e["batch_id"]: (e["source_file"], e["rows_in"], e["rows_landed"])
               for e in entries if e.get("event") == "batch"}
    assert batches == {b: (f, i, n) for b, f, i, n in query(
        settings, "duckdb", "select batch_id, source_file, rows_in, rows_landed from evident.batches")}


@pytest.mark.postgres
def test_a_run_on_both_engines_under_json_logs_carries_the_run_id_through_reconcile(tmp_path, fresh_pg_dsn):
    settings = project_settings(make_project(tmp_path / "project"), fresh_pg_dsn)
    generate_sample(settings.landing_dir, events=200, days=2, seed=20)
    result = run_cli(settings, "--log-format", "json", "run", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    entries = json_lines(result)
    [(run_id,)] = query(settings, "postgres", "select run_id from evident.runs where command = 'run'")
    assert query(settings, "duckdb", "select run_id from evident.runs where command = 'run'") == [(run_id,)]
    assert {e["run_id"] for e in entries} == {run_id}
    [doc] = [e for e in entries if e["_stream"] == "stdout"]
    assert set(doc["land"]) == {"duckdb", "postgres"}
    assert doc["land"]["duckdb"]["rows_landed"] == doc["land"]["postgres"]["rows_landed"] > 0
    assert doc["reconcile"]["status"] != "skipped" and doc["reconcile"]["success"] is True
    assert len({(b["engine"], b["batch_id"]) for b in (e for e in entries if e.get("event") == "batch")}) == \
        2 * len(query(settings, "postgres", "select batch_id from evident.batches"))


def test_status_json_under_json_logs_is_the_same_document_on_one_line(settings):
    generate_sample(settings.landing_dir, events=100, days=1, seed=21)
    assert run_cli(settings, "land").returncode == 0
    indented = run_cli(settings, "status", "--json")
    one_line = run_cli(settings, "--log-format", "json", "status", "--json")
    assert indented.returncode == one_line.returncode == 0, indented.stderr + one_line.stderr
    assert len(indented.stdout.splitlines()) > 1 and len(one_line.stdout.splitlines()) == 1
    assert without_ages(json.loads(one_line.stdout)) == without_ages(json.loads(indented.stdout))
    assert all(isinstance(json.loads(line), dict) for line in one_line.stderr.splitlines())


def without_ages(value):
    """A status document minus the ages (seconds since …), which grow between two calls."""
    if isinstance(value, dict):
        return {k: without_ages(v) for k, v in value.items() if "age" not in k}
    if isinstance(value, list):
        return [without_ages(v) for v in value]
    return value


def test_a_run_refused_by_the_lock_logs_its_run_id_and_exit_code(settings):
    generate_sample(settings.landing_dir, events=50, days=1, seed=14)
    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    with RunLock(settings.duckdb_path, None, "holder-run", "build"):
        result = run_cli(settings, "--log-format", "json", "run", "--json")
    assert result.returncode == 75, result.stdout + result.stderr
    entries = json_lines(result)
    [error] = [e for e in entries if e.get("event") == "error"]
    assert error["exit_code"] == 75 and error["reason"] == "lock_held" and "holder-run" in error["message"]
    assert re.fullmatch(r"\d{8}T\d{6}-[0-9a-f]{6}", error["run_id"])
    # `run --json` still prints its document, saying why the run did not happen.
    [document] = [e for e in entries if e["_stream"] == "stdout"]
    assert document["run_id"] == error["run_id"] and document["exit_code"] == 75
    assert document["error"]["reason"] == "lock_held" and document["status"] == "failed"


# ------------------------------------------------------------------------------------------ run --json

SUMMARY_LAND = re.compile(r"  land \[(\w+)\]: batches (.*); rows in (\d+), landed (\d+), quarantined (\d+), "
                          r"duplicate (\d+)")
SUMMARY_BUILD = re.compile(r"  build \[(\w+)\]: (\d+) dbt nodes OK, (\d+) batch\(es\) built")
SUMMARY_GATE = re.compile(r"  gate: gate (PASSED|FAILED) — (.*)")
SUMMARY_PUBLISH = re.compile(r"  publish \[(\w+)\]: (\S+) (\d+) rows \(\+(\d+) −(\d+)\)")


def test_run_json_prints_one_document_with_the_numbers_of_the_text_summary(settings):
    generate_sample(settings.landing_dir, events=400, days=2, seed=15, defect_rate=0.01)
    generate_orders_sample(settings.landing_dir, orders=50, days=2, seed=15)
    result = run_cli(settings, "run", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)  # the whole of stdout is the one document
    text = result.stderr.splitlines()  # progress and the text summary went to stderr
    run_id = the_run_id(settings)
    assert doc["run_id"] == run_id and doc["status"] == "succeeded" and doc["exit_code"] == 0
    [head] = [line for line in text if line.startswith(f"run {run_id} — ")]
    steps = dict(re.findall(r"(\w+) (\d+\.\d)s", head))
    assert steps == {k: f"{v:.1f}" for k, v in doc["steps_s"].items()}

    land = {m[1]: m.groups()[1:] for m in map(SUMMARY_LAND.fullmatch, text) if m}
    assert land == {engine: (", ".join(f"{k} {v}" for k, v in sorted(s["batches"].items())), str(s["rows_in"]),
                             str(s["rows_landed"]), str(s["rows_quarantined"]), str(s["rows_duplicate"]))
                    for engine, s in doc["land"].items()}
    assert doc["land"]["duckdb"]["rows_quarantined"] > 0  # the planted defects, quarantined
    assert doc["land"]["duckdb"]["rows_landed"] == land_counts(settings)["rows_landed"]
    build = [m.groups() for m in map(SUMMARY_BUILD.fullmatch, text) if m]
    assert build == [(b["engine"], str(b["nodes_run"]), str(b["batches_built"])) for b in doc["build"]]
    [gate] = [m.groups() for m in map(SUMMARY_GATE.fullmatch, text) if m]
    assert gate[0] == ("PASSED" if doc["gate"]["success"] else "FAILED")
    for engine, g in doc["gate"]["engines"].items():
        assert f"{engine}: {g['passed']}/{g['checks']} passed" in gate[1]
    publish = [m.groups() for m in map(SUMMARY_PUBLISH.fullmatch, text) if m]
    assert publish == [(p["engine"], p["table"], str(p["rows"]), str(p["rows_inserted"]), str(p["rows_deleted"]))
                       for p in doc["publish"]]
    assert doc["reconcile"]["status"] == "skipped" and \
        f"  {doc['reconcile']['lines'][0]}" in text
    assert doc["rejected"] == [] and doc["error"] is None
    [(revision,)] = query(settings, "duckdb", "select code_revision from evident.runs")
    assert doc["code_revision"] == revision


def test_run_json_with_json_logs_is_one_line_and_every_other_line_is_json_too(settings):
    generate_sample(settings.landing_dir, events=100, days=1, seed=16)
    result = run_cli(settings, "--log-format", "json", "run", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    entries = json_lines(result)
    [doc] = [e for e in entries if e["_stream"] == "stdout"]
    assert doc["run_id"] == the_run_id(settings) and doc["status"] == "succeeded"
    assert {e["run_id"] for e in entries} == {doc["run_id"]}
    [finished] = [e for e in entries if e.get("event") == "run_finished"]
    assert finished["_stream"] == "stderr"
    assert {k: v for k, v in finished["summary"].items() if k != "duration_s"} == \
        {k: v for k, v in doc.items() if k not in ("duration_s", "_stream")}


# ------------------------------------------------------------------------------------------ the streams themselves

@pytest.fixture
def streams(monkeypatch):
    """Fake terminals for logs.configure: the real sys.stdout/sys.stderr, as StringIO. Set when first used
    (`streams()` in the test body): pytest puts its own capture back into sys.stdout after the fixtures ran."""
    out, err = io.StringIO(), io.StringIO()

    def install() -> tuple[io.StringIO, io.StringIO]:
        monkeypatch.setattr("sys.stdout", out)
        monkeypatch.setattr("sys.stderr", err)
        return out, err

    yield install
    logs.restore()


def test_json_mode_turns_foreign_writes_into_json_lines_whole_lines_only(streams):
    import logging
    import sys

    import click

    out, err = streams()
    logs.configure("json", "info")
    logs.bind(run_id="r-1", command="land")
    sys.stdout.write("half a ")
    sys.stdout.write("line\x1b[0m\r\nnext\n\n")
    print("progress 10%\rprogress 20%", file=sys.stderr)
    with logs.step("land"):
        logging.getLogger("evident.test").warning("retry %d of %d", 2, 5, extra={"fields": {"batch_id": "b1"}})
    sys.stdout.buffer.write("bytes, é split: \u00e9".encode()[:-1])
    sys.stdout.buffer.write("é".encode()[-1:] + b"\n")
    click.echo(b"bytes through click")
    sys.stdout.write("no newline at the end")
    logs.restore()
    stdout = [json.loads(line) for line in out.getvalue().splitlines()]
    stderr = [json.loads(line) for line in err.getvalue().splitlines()]
    assert [e["message"] for e in stdout] == ["half a line", "next", "bytes, é split: é", "bytes through click",
                                              "no newline at the end"]
    assert [e["message"] for e in stderr] == ["progress 10%", "progress 20%", "retry 2 of 5"]
    assert stderr[2]["logger"] == "evident.test" and stderr[2]["level"] == "warning"
    assert stderr[2]["step"] == "land" and stderr[2]["batch_id"] == "b1"
    assert all(e["run_id"] == "r-1" and e["command"] == "land" for e in stdout + stderr)
    assert sys.stdout is out and sys.stderr is err  # restored


def test_a_secret_is_masked_inside_json_values_even_when_json_escaping_would_hide_it(streams):
    out, err = streams()
    secret = 'pa"ss\\word42'
    register_secret(secret)
    logs.configure("json", "info")
    logs.echo(f"connecting with {secret}", detail={"dsn": f"postgresql://u:{secret}@h/db"})
    logs.restore()
    assert secret not in out.getvalue() and json.dumps(secret)[1:-1] not in out.getvalue()
    entry = json.loads(out.getvalue())
    assert entry["message"] == "connecting with ***" and "***" in entry["detail"]["dsn"]


def test_text_mode_prints_the_text_as_it_is(streams):
    import logging

    out, err = streams()
    logs.configure("text", "info")
    logs.echo("▶ land …", event="step_started", step="land")
    logs.echo("REJECTED x", err=True)
    logging.getLogger("evident.retry").warning("transient fault")
    logging.getLogger("evident.retry").debug("not shown at info")
    assert out.getvalue() == "▶ land …\n"
    assert err.getvalue() == "REJECTED x\nWARNING evident.retry: transient fault\n"


def test_a_run_with_stderr_on_a_terminal_shows_a_live_status_line_and_wipes_it(settings):
    """A real run with stderr on a pseudo-terminal: the slow steps (build, gate take seconds) get a status line
    redrawn every second, wiped before the next output; stdout (a pipe) stays plain lines."""
    import os
    import pty
    import sys
    import threading

    from tests.helpers import env_for

    generate_sample(settings.landing_dir, events=200, days=1, seed=19)
    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    primary, secondary = pty.openpty()
    drawn = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the other side closed
                return
            if not chunk:
                return
            drawn.extend(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    try:
        result = subprocess.run([sys.executable, "-m", "evident.cli", "run"], env=env_for(settings),
                                stdout=subprocess.PIPE, stderr=secondary, text=True, timeout=300)
    finally:
        os.close(secondary)
    reader.join(timeout=10)
    os.close(primary)
    assert result.returncode == 0, drawn.decode(errors="replace")
    terminal = drawn.decode()
    assert re.search(r"\r(build|gate) … [1-9]\d* s", terminal), terminal
    assert terminal.rstrip(" ").endswith("\r")  # the last status line was wiped
    assert "\r" not in result.stdout and "▶ build …" in result.stdout


def test_progress_shows_only_on_a_terminal_and_counts_what_the_step_reports(streams):
    streams()

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    logs.configure("text", "info")
    terminal = Terminal()
    with logs.Progress("land", interval=0.01, stream=terminal) as progress:
        logs.advance(files=2, rows=1500)
        deadline = time.monotonic() + 5
        while "1,500 rows" not in terminal.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
    drawn = terminal.getvalue()
    assert "\rland … 0 s · 2 files · 1,500 rows" in drawn and drawn.endswith("\r")  # cleared at the end
    assert progress.files == 2
    log_file = io.StringIO()  # not a terminal: nothing drawn
    with logs.Progress("land", interval=0.01, stream=log_file):
        logs.advance(files=1)
    assert log_file.getvalue() == ""
