"""Reconciliation against a real DuckDB file and a real Postgres: identical data matches; each planted difference
is found by partition fingerprints + key-hash bisection and reported with the right key and kind."""
from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest

from evident import reconcile as rc
from evident.engines import DuckDBEngine, PostgresEngine
from evident.fingerprint import grouped_fingerprints
from evident.land.contracts import load_contract
from evident.land.raw_tables import RawTable
from evident.pipeline.context import prepare_engine
from evident.project import find_project
from evident.publish.marts import ensure_published_table
from tests.helpers import published_marts

DAY0 = datetime(2026, 3, 1)
RAW_COLUMNS = RawTable(load_contract("app_events", 1)).column_names


def run_context(engines, run_id: str) -> SimpleNamespace:
    """What the reconcile step reads of a pipeline.context.RunContext."""
    return SimpleNamespace(engines=engines, settings=SimpleNamespace(project=find_project()), run_id=run_id,
                           detail={}, status="succeeded")

TYPES = ("login", "view_page", "add_to_cart", "purchase", "signup", "logout")


def raw_rows(n: int, days: int = 3, start: int = 0) -> list[tuple]:
    rows = []
    for i in range(start, start + n):
        ts = DAY0 + timedelta(days=i % days, seconds=60 + (i * 7919) % 86000, microseconds=(i * 104729) % 1_000_000)
        kind = TYPES[i % len(TYPES)]
        key = hashlib.sha256(f"event-{i}".encode()).hexdigest()
        value = Decimal(f"{i % 500}.{i % 100:02d}") if kind == "purchase" else None
        rows.append((key, f"e{i}", 1 + i % 97, ts, kind, value,
                     None if i % 5 == 0 else f"1.{i % 4}.0", None if i % 3 else '{"k":"é中"}',
                     hashlib.sha256(f"payload-{i}".encode()).hexdigest(), "batch-1", 1, "f.jsonl", i + 1,
                     "app_events@1", datetime(2026, 3, 10)))
    return rows


def session_rows(n: int = 120) -> list[tuple]:
    rows = []
    for i in range(n):
        start = DAY0 + timedelta(days=i % 3, minutes=10 + i * 7, microseconds=i)
        rows.append((hashlib.md5(f"{i}|{start}".encode()).hexdigest(), 1 + i % 40, start,
                     start + timedelta(minutes=i % 30), 1 + i % 9, i % 4 == 0,
                     Decimal(f"{i}.{i % 100:02d}") if i % 4 == 0 else Decimal("0.00")))
    return rows


def metric_rows() -> list[tuple]:
    names = ("active_users", "events", "signups", "purchases", "revenue", "sessions", "converting_sessions",
             "session_conversion_rate")
    return [(date(2026, 3, 1) + timedelta(days=d), name,
             Decimal(f"{d * 10 + j}.{j:06d}") if name != "session_conversion_rate" else Decimal("0.333333"))
            for d in range(3) for j, name in enumerate(names)]


def load(engine, raw: list[tuple], sessions: list[tuple] | None = None, metrics: list[tuple] | None = None) -> None:
    prepare_engine(engine)
    engine.execute("create schema if not exists published")
    for mart in published_marts():
        ensure_published_table(engine, mart)  # as publish creates them (on Postgres: with change triggers)
    engine.bulk_insert("raw.app_events", RAW_COLUMNS, raw)
    marts = {m.name: m for m in published_marts()}
    for name, rows in (("fct_sessions", sessions), ("fct_daily_metrics", metrics)):
        if rows:
            engine.bulk_insert(f"published.{name}", [c.name for c in marts[name].columns], rows)


@pytest.fixture
def engines(tmp_path, fresh_pg_dsn):
    duck, pg = DuckDBEngine(tmp_path / "warehouse" / "evident.duckdb"), PostgresEngine(fresh_pg_dsn)
    yield duck, pg
    duck.close()
    pg.close()


@pytest.fixture
def loaded(engines):
    raw, sessions, metrics = raw_rows(600), session_rows(), metric_rows()
    for engine in engines:
        load(engine, raw, sessions, metrics)
    return SimpleNamespace(duck=engines[0], pg=engines[1], raw=raw, sessions=sessions, metrics=metrics)


def only(report, kind=None):
    diffs = [(p.table, p.partition, d) for p in report.partitions for d in p.diffs]
    assert len(diffs) == 1, report.render()
    return diffs[0]


def test_identical_data_reconciles_and_is_stored_in_both_engines(loaded):
    report = rc.reconcile([loaded.duck, loaded.pg], "run-1")
    assert report.status == "matched", report.render()
    # (no orders loaded: raw.orders and fct_orders_daily have no partitions)
    assert {p.table for p in report.partitions} == set(rc.table_specs()) - {"raw.orders", "published.fct_orders_daily"}
    raw_parts = [p for p in report.partitions if p.table == "raw.app_events"]
    assert [p.partition for p in raw_parts] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert sum(p.duckdb_rows for p in raw_parts) == sum(p.postgres_rows for p in raw_parts) == 600
    assert report.rows_fetched == 0
    assert rc.validate_report(report).success and report.success
    rc.store_report([loaded.duck, loaded.pg], report)
    for engine in (loaded.duck, loaded.pg):
        stored = engine.fetchall("select table_name, partition, status, duckdb_rows, postgres_rows "
                                 "from evident.reconciliations where run_id = 'run-1' order by 1, 2")
        assert len(stored) == len(report.partitions) and {r[2] for r in stored} == {"matched"}
    assert "OK" in report.render()


def test_deleted_row_is_missing_in_duckdb(loaded):
    key = loaded.raw[17][0]
    loaded.duck.execute("delete from raw.app_events where idempotency_key = %s", [key])
    report = rc.reconcile([loaded.duck, loaded.pg], "run-1")
    table, partition, diff = only(report)
    assert (table, diff.key, diff.kind) == ("raw.app_events", key, "missing_in_duckdb")
    assert partition == loaded.raw[17][3].date().isoformat()
    assert not rc.validate_report(report).success and not report.success
    assert key in report.render() and "missing_in_duckdb" in report.render()


def test_extra_row_is_missing_in_postgres(loaded):
    extra = raw_rows(1, start=10_000)
    loaded.duck.bulk_insert("raw.app_events", RAW_COLUMNS, extra)
    table, _, diff = only(rc.reconcile([loaded.duck, loaded.pg], "run-1"))
    assert (table, diff.key, diff.kind) == ("raw.app_events", extra[0][0], "missing_in_postgres")


def test_changed_measure_is_different_in_that_column(loaded):
    session_id = loaded.sessions[8][0]
    loaded.pg.execute("update published.fct_sessions set revenue = revenue + 0.01 where session_id = %s", [session_id])
    report = rc.reconcile([loaded.duck, loaded.pg], "run-1", tables=["fct_sessions"])
    table, _, diff = only(report)
    assert (table, diff.key, diff.kind, diff.columns) == \
        ("published.fct_sessions", session_id, "different", ["revenue"])
    assert Decimal(diff.postgres["revenue"]) - Decimal(diff.duckdb["revenue"]) == Decimal("0.01")
    part = report.mismatched[0]
    assert part.postgres_sums["revenue"] - part.duckdb_sums["revenue"] == Decimal("0.01")
    assert not rc.validate_report(report).success


def test_timestamp_shifted_by_one_microsecond(loaded):
    key = loaded.raw[42][0]
    loaded.duck.execute("update raw.app_events set event_ts = event_ts + interval '1 microsecond' "
                        "where idempotency_key = %s", [key])
    _, _, diff = only(rc.reconcile([loaded.duck, loaded.pg], "run-1", tables=["raw.app_events"]))
    assert (diff.key, diff.kind, diff.columns) == (key, "different", ["event_ts"])
    assert diff.duckdb["event_ts"] != diff.postgres["event_ts"]


def test_null_turned_into_empty_string(loaded):
    row = next(r for r in loaded.raw if r[6] is None)
    loaded.pg.execute("update raw.app_events set app_version = '' where idempotency_key = %s", [row[0]])
    _, _, diff = only(rc.reconcile([loaded.duck, loaded.pg], "run-1", tables=["app_events"]))
    assert (diff.key, diff.kind, diff.columns) == (row[0], "different", ["app_version"])
    assert diff.duckdb == {"app_version": None} and diff.postgres == {"app_version": ""}


def test_composite_key_and_declared_threshold(loaded):
    loaded.pg.execute("update published.fct_daily_metrics set metric_value = metric_value + 0.000001 "
                      "where metric_date = '2026-03-02' and metric_name = 'session_conversion_rate'")
    report = rc.reconcile([loaded.duck, loaded.pg], "run-1", tables=["fct_daily_metrics"])
    part = report.mismatched[0]
    assert part.status == "mismatched" and part.within_threshold
    assert part.diffs[0].key == "2026-03-02 | session_conversion_rate" and part.diffs[0].columns == ["metric_value"]
    assert part.max_measure_delta == Decimal("0.000001")
    assert rc.validate_report(report).success and report.success  # within the declared threshold
    loaded.pg.execute("update published.fct_daily_metrics set metric_value = metric_value + 5 "
                      "where metric_date = '2026-03-03' and metric_name = 'events'")
    report = rc.reconcile([loaded.duck, loaded.pg], "run-2", tables=["fct_daily_metrics"])
    assert not rc.validate_report(report).success
    assert any("acceptance" in f for f in report.validation.failures)


def test_date_window_limits_the_comparison(loaded):
    loaded.duck.execute("delete from raw.app_events where idempotency_key = %s", [loaded.raw[0][0]])  # 2026-03-01
    report = rc.reconcile([loaded.duck, loaded.pg], "run-1", tables=["raw.app_events"],
                          date_from="2026-03-02", date_to="2026-03-03")
    assert report.status == "matched" and [p.partition for p in report.partitions] == ["2026-03-02", "2026-03-03"]


def test_changed_row_in_a_partition_of_100k_rows_is_bisected(engines):
    duck, pg = engines
    raw = raw_rows(100_000, days=1)
    for engine in engines:
        load(engine, raw)
    first = rc.reconcile([duck, pg], "run-0", tables=["raw.app_events"])  # hashes it, keeps its fingerprints
    assert first.status == "matched" and first.partitions_hashed == 1
    key = raw[77_777][0]
    # written behind Evident's back, in a column that is no measure and keeps the count: the change marker moves
    pg.execute("update raw.app_events set event_id = 'tampered' where idempotency_key = %s", [key])
    report = rc.reconcile([duck, pg], "run-1", tables=["raw.app_events"])
    (table, partition, diff), = [(p.table, p.partition, d) for p in report.partitions for d in p.diffs]
    assert (partition, diff.key, diff.kind, diff.columns) == ("2026-03-01", key, "different", ["event_id"])
    assert diff.postgres == {"event_id": "tampered"}
    assert report.rows_fetched <= 2 * rc.LEAF_ROWS, report.rows_fetched  # one leaf bucket from each side
    assert report.partitions_hashed == 1
    # per engine: fingerprints brought up to date, narrowing, fetching
    assert report.queries <= 6


def test_partition_missing_in_one_engine_is_capped(engines):
    duck, pg = engines
    raw = raw_rows(3000)
    load(duck, raw)
    load(pg, [r for r in raw if r[3].date() != date(2026, 3, 2)])
    report = rc.reconcile([duck, pg], "run-1", tables=["raw.app_events"])
    part, = report.mismatched
    assert (part.partition, part.duckdb_rows, part.postgres_rows) == ("2026-03-02", 1000, 0)
    assert part.truncated and len(part.diffs) == rc.MAX_KEYS
    assert {d.kind for d in part.diffs} == {"missing_in_postgres"}
    assert report.rows_fetched <= rc.MAX_KEYS * rc.LEAF_ROWS
    assert json.loads(part.differing_keys_json())["truncated"] is True


def test_duplicate_key_with_different_multiplicity(engines):
    duck, pg = engines
    rows = session_rows(30)
    load(duck, raw_rows(10), rows + [rows[3]])
    load(pg, raw_rows(10), rows)
    _, _, diff = only(rc.reconcile([duck, pg], "run-1", tables=["fct_sessions"]))
    assert (diff.key, diff.kind) == (rows[3][0], "duplicated_in_duckdb")


def test_only_duckdb_configured_is_skipped(tmp_path):
    duck = DuckDBEngine(tmp_path / "evident.duckdb")
    prepare_engine(duck)
    try:
        report = rc.reconcile([duck], "run-1")
        assert report.status == "skipped" and report.success and "EVIDENT_POSTGRES_DSN" in report.reason
        ctx = run_context([duck], "run-1")
        report = rc.run_reconcile(ctx)
        assert report.status == "skipped" and ctx.status == "succeeded"
        assert "skipped" in report.render()
        assert duck.fetchall("select status from evident.reconciliations") == [("skipped",)]
    finally:
        duck.close()


def _published_batch(engine, batch_id: str, dates: str) -> None:
    engine.execute(
        "insert into evident.batches (batch_id, source_file, source_sha256, source_bytes, contract_id, code_revision, "
        "state, run_id, event_dates, created_at, updated_at) values (%s, 'f', 'x', 1, 'c', 'r', 'published', 'r0', %s, "
        "%s, %s)", [batch_id, dates, datetime(2026, 3, 10), datetime(2026, 3, 10)])


def test_run_step_marks_batches_reconciled_or_fails(loaded):
    for engine in (loaded.duck, loaded.pg):
        _published_batch(engine, "b-ok", "2026-03-01,2026-03-02")
        _published_batch(engine, "b-bad", "2026-03-03")
    ctx = run_context([loaded.pg, loaded.duck], "run-1")
    report = rc.run_reconcile(ctx)
    assert report.success
    for engine in (loaded.duck, loaded.pg):
        assert dict(engine.fetchall("select batch_id, state from evident.batches")) == {
            "b-ok": "reconciled", "b-bad": "reconciled"}
    for engine in (loaded.duck, loaded.pg):
        _published_batch(engine, "b-ok2", "2026-03-01")
        _published_batch(engine, "b-bad2", "2026-03-03")
    row = next(r for r in loaded.raw if r[3].date() == date(2026, 3, 3))
    loaded.pg.execute("delete from raw.app_events where idempotency_key = %s", [row[0]])
    ctx = run_context([loaded.pg, loaded.duck], "run-2")
    with pytest.raises(rc.ReconciliationFailed) as failed:
        rc.run_reconcile(ctx)
    assert failed.value.exit_code == 1 and row[0] in str(failed.value) and ctx.status == "failed"
    assert ctx.detail["reconcile"]["success"] is False
    for engine in (loaded.duck, loaded.pg):  # a failed reconciliation moves nothing
        assert dict(engine.fetchall("select batch_id, state from evident.batches where batch_id like '%2'")) == {
            "b-ok2": "published", "b-bad2": "published"}
        assert engine.fetchone("select count(*) from evident.reconciliations where run_id = 'run-2' "
                               "and status = 'mismatched'")[0] == 1


def test_canonical_text_does_not_depend_on_the_postgres_datestyle(loaded):
    loaded.pg.execute("set datestyle to 'German, DMY'")
    report = rc.reconcile([loaded.duck, loaded.pg], "run-1")
    assert report.status == "matched", report.render()


def test_differing_partitions_of_a_table_are_narrowed_together(engines):
    duck, pg = engines
    raw = raw_rows(30_000, days=3)
    for engine in engines:
        load(engine, raw)
    planted = {raw[i][3].date().isoformat(): raw[i][0] for i in (9, 20_000, 29_998)}
    assert len(planted) == 3  # one per date
    pg.execute(f"delete from raw.app_events where idempotency_key in ({', '.join(['%s'] * 3)})", list(planted.values()))
    report = rc.reconcile([duck, pg], "run-1", tables=["raw.app_events"])
    found = {p.partition: [(d.key, d.kind) for d in p.diffs] for p in report.mismatched}
    assert found == {day: [(key, "missing_in_postgres")] for day, key in planted.items()}
    assert report.queries == 6  # fingerprints brought up to date, one narrowing level, one fetch — per engine
    assert report.rows_fetched <= 3 * 2 * rc.LEAF_ROWS


def test_table_missing_in_one_engine(engines):
    duck, pg = engines
    load(duck, raw_rows(10), session_rows(10))
    load(pg, raw_rows(10), session_rows(10))
    pg.execute("drop table published.fct_daily_metrics")
    duck.bulk_insert("published.fct_daily_metrics", ["metric_date", "metric_name", "metric_value"], metric_rows())
    report = rc.reconcile([duck, pg], "run-1")
    part, = report.mismatched
    assert (part.table, part.partition, part.duckdb_rows, part.postgres_rows) == \
        ("published.fct_daily_metrics", "*", 24, 0)
    assert part.diffs[0].kind == "table_missing_in_postgres"
    assert not rc.validate_report(report).success


def test_usage_errors_are_configuration_errors(loaded):
    from evident.errors import ConfigError

    with pytest.raises(ConfigError):
        rc.reconcile([loaded.duck, loaded.pg], "run-1", tables=["nope"])
    with pytest.raises(ConfigError):
        rc.reconcile([loaded.duck, loaded.pg], "run-1", date_from="2026-03-03", date_to="2026-03-01")
    with pytest.raises(ConfigError):
        rc.reconcile([loaded.duck, loaded.pg], "run-1", date_from="03/01/2026")


def test_reconcile_step_lines_for_the_run_summary(loaded):
    for engine in (loaded.duck, loaded.pg):
        _published_batch(engine, "b-1", "2026-03-01")
    ctx = run_context([loaded.pg, loaded.duck], "run-1")
    lines = rc.reconcile_step(ctx)
    assert lines[0].startswith("reconcile: OK") and any("batches now reconciled" in line for line in lines)
    duck_only = run_context([loaded.duck], "run-2")
    assert rc.reconcile_step(duck_only)[0].startswith("reconcile: skipped — Postgres is not configured")


def test_stored_suite_is_the_definition():
    stored = rc.load_suite_json()
    assert stored["name"] == rc.SUITE_NAME
    assert [(e["type"], e["kwargs"]) for e in stored["expectations"]] == [
        (e["type"], e["kwargs"]) for e in rc.suite_definition()["expectations"]]


def fingerprint_groups(engine, spec) -> dict:
    return grouped_fingerprints(engine, spec.name, list(spec.columns), rc.sql.partition_sql(spec), spec.measures)


def _kept(engine, table: str) -> dict:
    return {part: (rows, int(hash_sum)) for part, rows, hash_sum in engine.fetchall(
        "select partition, row_count, row_hash_sum from evident.partition_fingerprints where table_name = %s",
        [table])}


def test_partitions_nobody_wrote_to_are_not_hashed_again(loaded):
    first = rc.reconcile([loaded.duck, loaded.pg], "run-1")
    assert first.status == "matched" and first.partitions_hashed == len(first.partitions)
    spec = rc.table_specs()["published.fct_sessions"]
    for engine in (loaded.duck, loaded.pg):  # what is kept is each partition's fingerprint, computed afresh
        fresh = fingerprint_groups(engine, spec)
        assert _kept(engine, spec.name) == {str(p): (fp.rows, fp.row_hash_sum) for p, fp in fresh.items()}
    again = rc.reconcile([loaded.duck, loaded.pg], "run-2")
    assert again.status == "matched" and again.partitions_hashed == 0
    assert [(p.table, p.partition, p.duckdb_rows) for p in again.partitions] == \
        [(p.table, p.partition, p.duckdb_rows) for p in first.partitions]
    assert "0 hashed" in again.render()
    full = rc.reconcile([loaded.duck, loaded.pg], "run-3", full=True)
    assert full.status == "matched" and full.partitions_hashed == len(full.partitions) and full.full


@pytest.mark.parametrize("side", ["duck", "pg"])
def test_a_write_behind_evidents_back_is_found_without_full(loaded, side):
    assert rc.reconcile([loaded.duck, loaded.pg], "run-1").status == "matched"
    victim = loaded.sessions[7]
    # neither the count nor a measure moves: only the change marker tells the partition was written to
    getattr(loaded, side).execute("update published.fct_sessions set session_end = session_end + interval "
                                  "'1 microsecond' where session_id = %s", [victim[0]])
    report = rc.reconcile([loaded.duck, loaded.pg], "run-2")
    table, partition, diff = only(report)
    assert (table, partition, diff.key, diff.kind, diff.columns) == (
        "published.fct_sessions", victim[2].date().isoformat(), victim[0], "different", ["session_end"])
    assert report.partitions_hashed == 1  # that partition, on both engines
    # the difference stays found: the stored fingerprints now differ, and the partition is pinpointed again
    assert [d.key for d in only(rc.reconcile([loaded.duck, loaded.pg], "run-3"))[2:]] == [victim[0]]


def test_a_partition_deleted_on_both_engines_is_forgotten(loaded):
    rc.reconcile([loaded.duck, loaded.pg], "run-1")
    for engine in (loaded.duck, loaded.pg):
        engine.execute("delete from raw.app_events where cast(event_ts as date) = date '2026-03-02'")
    report = rc.reconcile([loaded.duck, loaded.pg], "run-2", tables=["raw.app_events"])
    assert report.status == "matched" and [p.partition for p in report.partitions] == ["2026-03-01", "2026-03-03"]
    for engine in (loaded.duck, loaded.pg):
        assert sorted(_kept(engine, "raw.app_events")) == ["2026-03-01", "2026-03-03"]


def test_a_window_keeps_the_fingerprints_outside_it(loaded):
    rc.reconcile([loaded.duck, loaded.pg], "run-1", tables=["raw.app_events"])
    before = _kept(loaded.pg, "raw.app_events")
    loaded.pg.execute("update raw.app_events set app_version = 'x' where cast(event_ts as date) = date '2026-03-01'")
    windowed = rc.reconcile([loaded.duck, loaded.pg], "run-2", tables=["raw.app_events"], date_from="2026-03-02")
    assert windowed.status == "matched" and windowed.partitions_hashed == 0
    assert _kept(loaded.pg, "raw.app_events") == before
    assert {p.partition for p in rc.reconcile([loaded.duck, loaded.pg], "run-3").mismatched} == {"2026-03-01"}


def test_postgres_records_the_partitions_written_to_and_reconcile_forgets_them(loaded):
    rc.reconcile([loaded.duck, loaded.pg], "run-1")
    changes = "select distinct table_name, partition from evident.partition_changes order by 1, 2"
    assert loaded.pg.fetchall(changes) == []
    victim = loaded.sessions[7]
    loaded.pg.execute("set datestyle to 'German, DMY'")  # the writer's DateStyle does not change the record
    loaded.pg.execute("update published.fct_sessions set event_count = event_count + 1 where session_id = %s",
                      [victim[0]])
    assert loaded.pg.fetchall(changes) == [("published.fct_sessions", victim[2].date().isoformat())]
    windowed = rc.reconcile([loaded.duck, loaded.pg], "run-2", date_from="2026-03-04")
    assert windowed.partitions == [] and len(loaded.pg.fetchall(changes)) == 1  # outside the window: kept
    assert only(rc.reconcile([loaded.duck, loaded.pg], "run-3"))[2].key == victim[0]
    assert loaded.pg.fetchall(changes) == []
    loaded.pg.execute("truncate published.fct_daily_metrics")  # every partition
    report = rc.reconcile([loaded.duck, loaded.pg], "run-4", tables=["fct_daily_metrics"])
    assert {p.partition for p in report.mismatched} == {"2026-03-01", "2026-03-02", "2026-03-03"}


def test_a_write_postgres_did_not_record(loaded):
    rc.reconcile([loaded.duck, loaded.pg], "run-1")
    loaded.pg.execute("alter table published.fct_sessions disable trigger user")
    victim = loaded.sessions[8]
    # a measure moved: the rest of the table no longer totals what was hashed, so each partition is looked at
    loaded.pg.execute("update published.fct_sessions set revenue = revenue + 1 where session_id = %s", [victim[0]])
    table, _, diff = only(rc.reconcile([loaded.duck, loaded.pg], "run-2"))
    assert (table, diff.key, diff.columns) == ("published.fct_sessions", victim[0], ["revenue"])
    loaded.pg.execute("update published.fct_sessions set revenue = revenue - 1 where session_id = %s", [victim[0]])
    assert rc.reconcile([loaded.duck, loaded.pg], "run-3").status == "matched"
    # neither count nor measure moved and nothing was recorded: only a full reconcile sees it
    loaded.pg.execute("update published.fct_sessions set session_end = session_end + interval '1 second' "
                      "where session_id = %s", [victim[0]])
    assert rc.reconcile([loaded.duck, loaded.pg], "run-4").status == "matched"
    table, _, diff = only(rc.reconcile([loaded.duck, loaded.pg], "run-5", full=True))
    assert (table, diff.key, diff.columns) == ("published.fct_sessions", victim[0], ["session_end"])
