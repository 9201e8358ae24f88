"""Landing on real DuckDB files and a real Postgres: exactly once, whatever the batching or repetition."""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from evident.control.batches import check_transition, transition
from evident.engines import DuckDBEngine
from evident.errors import IllegalTransition, PermanentDatabaseError
from evident.land import loader as landing
from evident.land.contracts import load_contract
from evident.land.step import land
from evident.pipeline.context import open_run, prepare_engine
from evident.sample import generate_sample
from tests.helpers import quarantine_rows, query, raw_rows, run_cli, settings_for, source_dir


@pytest.fixture(params=["duckdb", "postgres"])
def settings(request, tmp_path):
    """DuckDB alone, or Postgres configured (then every batch lands in both engines)."""
    dsn = request.getfixturevalue("fresh_pg_dsn") if request.param == "postgres" else None
    s = settings_for(tmp_path, dsn)
    s.landing_dir.mkdir(parents=True)
    return s


@pytest.fixture(scope="module")
def clean_sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate_sample(out, events=3000, days=4, seed=7)
    return out


@pytest.fixture(scope="module")
def defect_sample(tmp_path_factory) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("defects")
    result = generate_sample(out, events=3000, days=4, seed=11, defect_rate=0.02)
    return out, result.defects


def land_all(settings):
    with open_run(settings, "land") as ctx:
        return land(ctx)


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True)


def test_landing_the_same_files_twice_lands_nothing_twice(settings, clean_sample):
    copy_tree(clean_sample, settings.landing_dir)
    first = land_all(settings)
    rows = {e: raw_rows(settings, e) for e in settings.engines}
    second = land_all(settings)
    assert {o.status for o in first} == {"landed"}
    assert {o.status for o in second} == {"unchanged"}
    assert {e: raw_rows(settings, e) for e in settings.engines} == rows
    assert len(rows["duckdb"]) > 2500
    if "postgres" in settings.engines:
        assert rows["postgres"] == rows["duckdb"]


def test_a_different_batching_gives_identical_raw_rows(settings, clean_sample, tmp_path):
    # Reference: all files in one land.
    reference = settings_for(tmp_path / "reference")
    copy_tree(clean_sample, reference.landing_dir)
    land_all(reference)
    expected = raw_rows(reference, "duckdb")
    # The same events delivered one file per run, then all files again concatenated into one batch.
    files = sorted(p for p in clean_sample.rglob("*.jsonl"))
    for path in files:
        target = settings.landing_dir / path.relative_to(clean_sample)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
        land_all(settings)
    (source_dir(settings) / "zz_redelivery.jsonl").write_bytes(b"".join(p.read_bytes() for p in files))
    outcomes = land_all(settings)
    redelivery = [o for o in outcomes if o.source_file == "app_events/zz_redelivery.jsonl"]
    assert all(o.rows_landed == 0 and o.rows_duplicate == o.rows_in for o in redelivery)
    for engine in settings.engines:
        assert raw_rows(settings, engine) == expected


def test_every_planted_defect_is_quarantined_with_its_reason_and_line(settings, defect_sample):
    sample_dir, defects = defect_sample
    copy_tree(sample_dir, settings.landing_dir)
    outcomes = land_all(settings)
    assert {o.status for o in outcomes} == {"landed"}
    expected = sorted((d.file, d.line, d.reason_code) for d in defects)
    assert {d[2] for d in expected} >= {"malformed_json", "invalid_utf8", "wrong_type", "unknown_field",
                                        "missing_field", "invalid_value", "oversized_record",
                                        "conflicting_duplicate"}
    for engine in settings.engines:
        assert quarantine_rows(settings, engine) == expected
        # Nothing bad reached raw: every landed row is distinct from the quarantined lines.
        bad = query(settings, engine, "select count(*) from raw.app_events r join raw.app_events_quarantine q "
                                      "on r.source_file = q.source_file and r.source_line = q.line_number")
        assert bad == [(0,)]


def test_validating_in_worker_processes_lands_exactly_what_the_main_process_lands(settings, defect_sample,
                                                                                 tmp_path):
    sample_dir, _ = defect_sample
    manifest = ("select batch_id, source_file, state, land_seq, rows_in, rows_landed, rows_quarantined, "
                "rows_duplicate, landed_checksum, event_dates from evident.batches order by batch_id")
    inline = replace(settings_for(tmp_path / "inline"), land_workers=0)
    copy_tree(sample_dir, inline.landing_dir)
    land_all(inline)
    settings = replace(settings, land_workers=2)
    copy_tree(sample_dir, settings.landing_dir)
    outcomes = land_all(settings)
    assert {o.status for o in outcomes} == {"landed"}
    for engine in settings.engines:
        assert raw_rows(settings, engine) == raw_rows(inline, "duckdb")
        assert quarantine_rows(settings, engine) == quarantine_rows(inline, "duckdb")
        assert query(settings, engine, manifest) == query(inline, "duckdb", manifest)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_file_cut_into_many_chunks_lands_exactly_what_one_chunk_lands(settings, defect_sample, tmp_path,
                                                                      monkeypatch, workers):
    """Duplicates and conflicts across chunk boundaries are judged like those inside one chunk: by the engine,
    over the whole batch, first delivery winning."""
    from evident.land import chunks

    sample_dir, defects = defect_sample
    assert {d.reason_code for d in defects} >= {"conflicting_duplicate"}
    whole = replace(settings_for(tmp_path / "whole"), land_workers=0)
    copy_tree(sample_dir, whole.landing_dir)
    land_all(whole)
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 1500)  # a few lines per chunk
    settings = replace(settings, land_workers=workers)
    copy_tree(sample_dir, settings.landing_dir)
    assert {o.status for o in land_all(settings)} == {"landed"}
    manifest = ("select batch_id, source_file, state, land_seq, rows_in, rows_landed, rows_quarantined, "
                "rows_duplicate, landed_checksum, min_event_ts, max_event_ts, event_dates from evident.batches "
                "order by batch_id")
    for engine in settings.engines:
        assert raw_rows(settings, engine) == raw_rows(whole, "duckdb")
        assert quarantine_rows(settings, engine) == quarantine_rows(whole, "duckdb")
        assert query(settings, engine, manifest) == query(whole, "duckdb", manifest)


def test_a_bad_worker_count_is_a_configuration_error(settings, clean_sample):
    copy_tree(clean_sample, settings.landing_dir)
    result = run_cli(settings, "land", EVIDENT_LAND_WORKERS="two")
    assert result.returncode == 2 and "EVIDENT_LAND_WORKERS must be a whole number" in result.stderr
    assert "Traceback" not in result.stderr


def test_quarantine_keeps_raw_text_escaped_bytes_and_message(settings):
    (source_dir(settings) / "a.jsonl").write_bytes(
        b'{"event_id":"\xff\xfe","user_id":1,"event_ts":"2026-01-01T00:00:00Z","event_type":"login"}\n'
        + b"".join(b'{"event_id":"e%d","user_id":1,"event_ts":"2026-01-01T00:00:%02dZ","event_type":"login"}\n'
                   % (i, i) for i in range(40)))
    land_all(settings)
    for engine in settings.engines:
        [(raw, reason, message)] = query(settings, engine, "select raw_text, reason_code, message "
                                                           "from raw.app_events_quarantine")
        assert reason == "invalid_utf8" and "\\xff\\xfe" in raw and "UTF-8" in message
        assert query(settings, engine, "select count(*) from raw.app_events") == [(40,)]


def test_a_batch_over_the_quarantine_threshold_lands_nothing_and_says_why(settings):
    good = [b'{"event_id":"g%d","user_id":3,"event_ts":"2026-01-01T00:00:%02dZ","event_type":"login"}' % (i, i)
            for i in range(18)]
    (source_dir(settings) / "bad.jsonl").write_bytes(b"\n".join(good + [b"{oops", b"[]"]) + b"\n")
    result = run_cli(settings, "land")
    assert result.returncode == 1, result.stderr
    assert "quarantine_threshold" in result.stdout + result.stderr and "10.0%" in result.stdout + result.stderr
    for engine in settings.engines:
        assert query(settings, engine, "select count(*) from raw.app_events") == [(0,)]
        assert query(settings, engine, "select state from evident.batches") == [("failed",)]
        assert query(settings, engine, "select reason_code from raw.app_events_quarantine order by 1") == \
            [("malformed_json",), ("wrong_type",)]
    # A rerun does not land it either, and says it was rejected before.
    again = run_cli(settings, "land")
    assert again.returncode == 0 and "rejected earlier" in again.stderr


def test_conflicting_duplicate_in_a_later_batch_keeps_the_first_row(settings):
    first = b'{"event_id":"e","user_id":9,"event_ts":"2026-01-01T00:00:00Z","event_type":"purchase","value":5}\n'
    later = b'{"event_id":"e","user_id":9,"event_ts":"2026-01-01T00:00:00Z","event_type":"purchase","value":6}\n'
    filler = b"".join(b'{"event_id":"f%d","user_id":9,"event_ts":"2026-01-02T00:00:%02dZ","event_type":"login"}\n'
                      % (i, i) for i in range(30))
    (source_dir(settings) / "1.jsonl").write_bytes(first)
    land_all(settings)
    (source_dir(settings) / "2.jsonl").write_bytes(filler + later)
    land_all(settings)
    for engine in settings.engines:
        assert query(settings, engine, "select value from raw.app_events where event_id = 'e'")[0][0] == 5
        assert query(settings, engine, "select source_file, line_number, reason_code from "
                                       "raw.app_events_quarantine") == \
            [("app_events/2.jsonl", 31, "conflicting_duplicate")]


def test_manifest_holds_the_replay_metadata(settings, clean_sample):
    copy_tree(clean_sample, settings.landing_dir)
    land_all(settings)
    for engine in settings.engines:
        rows = query(settings, engine, "select source_file, source_sha256, contract_id, code_revision, state, "
                                       "rows_in, rows_landed, rows_quarantined, rows_duplicate, landed_checksum, "
                                       "min_event_ts, event_dates, land_seq from evident.batches order by land_seq")
        assert [r[12] for r in rows] == list(range(1, len(rows) + 1))
        for (_src, sha, contract_id, rev, state, n_in, n_landed, n_q, n_dup, checksum, min_ts, dates, _) in rows:
            assert len(sha) == 64 and contract_id == load_contract().contract_id and rev
            assert state == "landed" and n_in == n_landed + n_q + n_dup and len(checksum) == 64
            assert min_ts is not None and dates
        landed = query(settings, engine, "select sum(rows_landed) from evident.batches")[0][0]
        assert query(settings, engine, "select count(*) from raw.app_events") == [(landed,)]
        transitions = query(settings, engine, "select from_state, to_state from evident.batch_transitions "
                                              "where batch_id = (select min(batch_id) from evident.batches)")
        assert transitions == [(None, "received"), ("received", "validated"), ("validated", "landed")]


def test_illegal_transitions_raise(tmp_path):
    for current, target in [("landed", "received"), (None, "landed"), ("published", "landed"),
                            ("reconciled", "failed"), ("received", "published")]:
        with pytest.raises(IllegalTransition):
            check_transition("b", current, target)
    engine = DuckDBEngine(tmp_path / "w.duckdb")
    prepare_engine(engine)
    with pytest.raises(IllegalTransition):
        transition(engine, "no-such-batch", "landed", "run")
    engine.close()


def land_with(ctx, contract):
    """Land the app_events files under one given contract (not the project's)."""
    routed = [(p, contract) for p in sorted(source_dir(ctx.settings).rglob("*.jsonl"))]
    return landing.land_files(ctx.engines, ctx.settings.landing_dir, routed, ctx.run_id, ctx.code_revision)


def test_a_contract_change_mid_batch_fails_it_safely(settings, tmp_path, monkeypatch):
    contract_file = tmp_path / "app_events.v1.yml"
    shutil.copy(load_contract().path, contract_file)
    contract = load_contract(path=contract_file)
    (source_dir(settings) / "a.jsonl").write_bytes(
        b'{"event_id":"e","user_id":1,"event_ts":"2026-01-01T00:00:00Z","event_type":"login"}\n')
    real_point = landing.faults.point

    def change_contract(name):
        if name.endswith("mid_transaction"):
            contract_file.write_text(contract_file.read_text().replace("max_quarantine_share: 0.05",
                                                                       "max_quarantine_share: 0.10"))
        real_point(name)

    monkeypatch.setattr(landing.faults, "point", change_contract)
    with open_run(settings, "land") as ctx:
        outcomes = land_with(ctx, contract)
    assert {o.status for o in outcomes} == {"rejected"}
    assert "contract" in outcomes[0].message and "changed" in outcomes[0].message
    engine = settings.engines[0]
    assert query(settings, engine, "select count(*) from raw.app_events") == [(0,)]
    assert query(settings, engine, "select state, failure_reason like 'contract_changed%' "
                                   "from evident.batches") == [("failed", True)]
    # Under the new contract the batch is received again and lands.
    monkeypatch.setattr(landing.faults, "point", real_point)
    with open_run(settings, "land") as ctx:
        outcomes = land_with(ctx, load_contract(path=contract_file))
    assert {o.status for o in outcomes} == {"landed"}
    assert query(settings, engine, "select count(*) from raw.app_events") == [(1,)]


def test_status_reports_batches_and_rows_per_engine(settings, defect_sample):
    copy_tree(defect_sample[0], settings.landing_dir)
    assert run_cli(settings, "land").returncode == 0
    result = run_cli(settings, "status", "--json")
    assert result.returncode == 0, result.stderr
    statuses = json.loads(result.stdout)
    assert [s["engine"] for s in statuses] == (["postgres", "duckdb"] if settings.postgres_dsn else ["duckdb"])
    for s in statuses:
        assert s["batches_by_state"] == {"landed": len(list(defect_sample[0].rglob("*.jsonl")))}
        assert s["rows_quarantined"] == len(defect_sample[1]) and s["rows_landed"] > 2000
        assert s["last_successful_land"]
    assert "rows landed" in run_cli(settings, "status").stdout


@pytest.mark.postgres
def test_a_dropped_connection_is_retried_and_the_land_completes(fresh_pg_dsn, tmp_path, clean_sample,
                                                                monkeypatch, caplog):
    settings = settings_for(tmp_path, fresh_pg_dsn)
    copy_tree(clean_sample, settings.landing_dir)
    dropped = []
    real_point = landing.faults.point

    def drop_once(name):
        if name == "land.postgres.mid_transaction" and not dropped:
            with psycopg.connect(fresh_pg_dsn, autocommit=True) as admin:
                dropped.append(admin.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() "
                    "and application_name like 'evident land%%'").fetchall())
        real_point(name)

    monkeypatch.setattr(landing.faults, "point", drop_once)
    caplog.set_level(logging.WARNING)
    outcomes = land_all(settings)
    assert dropped and {o.status for o in outcomes} == {"landed"}
    assert any("transient fault" in r.getMessage() for r in caplog.records)
    assert raw_rows(settings, "postgres") == raw_rows(settings, "duckdb")


@pytest.mark.postgres
def test_a_permanent_database_error_fails_at_once_without_retrying(fresh_pg_dsn, tmp_path, clean_sample, caplog):
    settings = settings_for(tmp_path, fresh_pg_dsn)
    copy_tree(clean_sample, settings.landing_dir)
    with psycopg.connect(fresh_pg_dsn, autocommit=True) as con:
        con.execute("create schema raw")
        con.execute("create table raw.app_events (idempotency_key varchar(64) primary key, wrong_column int)")
    caplog.set_level(logging.WARNING)
    with pytest.raises(PermanentDatabaseError, match="failed: UndefinedColumn"):
        land_all(settings)
    assert not any("transient fault" in r.getMessage() for r in caplog.records)
