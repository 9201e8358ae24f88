"""Write–audit–publish: only a passing gate changes published.*, atomically for readers."""
from __future__ import annotations

import shutil

import duckdb
import psycopg
import pytest

from evident.engines import DuckDBEngine, PostgresEngine
from evident.fingerprint import fingerprint
from evident.pipeline.context import prepare_engine
from evident.publish.step import publish_engine
from evident.sample import generate_sample
from tests.helpers import published_marts, query, run_cli, settings_for, source_dir


def published(settings, engine: str) -> dict[str, list[tuple]]:
    order = {"fct_sessions": "session_id", "fct_daily_metrics": "metric_date, metric_name"}
    return {m.name: query(settings, engine, f"select * from published.{m.name} order by {order[m.name]}")
            for m in published_marts()}


def corrupt(settings, sql: str) -> None:
    for engine in settings.engines:
        if engine == "duckdb":
            con = duckdb.connect(str(settings.duckdb_path))
            catalog = con.execute("select current_database()").fetchone()[0]
            con.execute(sql.replace("analytics.", f'"{catalog}".analytics.'))
            con.close()
        else:
            with psycopg.connect(settings.postgres_dsn, autocommit=True) as con:
                con.execute(sql)


NEGATIVE_REVENUE = ("update analytics.fct_sessions set revenue = -5 where session_id = "
                    "(select min(session_id) from analytics.fct_sessions)", "revenue")
DUPLICATE_GRAIN_ROW = ("insert into analytics.fct_daily_metrics select * from analytics.fct_daily_metrics where "
                       "metric_date = (select min(metric_date) from analytics.fct_daily_metrics) and "
                       "metric_name = 'events'", "metric_name")


@pytest.fixture(params=[("duckdb", NEGATIVE_REVENUE), ("postgres", DUPLICATE_GRAIN_ROW)], ids=["duckdb", "postgres"])
def planted(request, tmp_path):
    """DuckDB alone with a negative revenue; both engines (Postgres configured) with a duplicated grain row."""
    engine, plant = request.param
    dsn = request.getfixturevalue("fresh_pg_dsn") if engine == "postgres" else None
    return settings_for(tmp_path, dsn), plant


def test_a_failing_gate_leaves_published_exactly_as_it_was_and_a_fixed_run_publishes(planted, tmp_path):
    settings, (plant, expectation) = planted
    source = tmp_path / "source"
    generate_sample(source, events=1500, days=3, seed=21)
    files = sorted(source.rglob("*.jsonl"))
    settings.landing_dir.mkdir(parents=True)
    shutil.copy(files[0], source_dir(settings) / files[0].name)
    first = run_cli(settings, "run")
    assert first.returncode == 0, first.stdout + first.stderr
    before = {e: published(settings, e) for e in settings.engines}
    assert all(before[e]["fct_sessions"] for e in settings.engines)

    for path in files[1:]:
        shutil.copy(path, source_dir(settings) / path.name)
    assert run_cli(settings, "land").returncode == 0
    assert run_cli(settings, "build").returncode == 0
    corrupt(settings, plant)
    gate = run_cli(settings, "gate")
    assert gate.returncode == 1
    assert expectation in gate.stdout + gate.stderr and "expect" in (gate.stdout + gate.stderr).lower()
    refused = run_cli(settings, "publish")
    assert refused.returncode == 1 and "gate has not passed" in refused.stderr
    assert {e: published(settings, e) for e in settings.engines} == before

    fixed = run_cli(settings, "run", "--full-refresh")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    after = {e: published(settings, e) for e in settings.engines}
    assert all(after[e] != before[e] for e in settings.engines)
    for engine in settings.engines:
        assert query(settings, engine, "select count(*) from evident.batches where state not in "
                                       "('published', 'reconciled')") == [(0,)]


def _seed_audit_area(engine, sessions: int) -> None:
    engine.execute("create schema if not exists analytics")
    engine.execute("drop table if exists analytics.fct_sessions")
    engine.execute("drop table if exists analytics.fct_daily_metrics")
    engine.execute("create table analytics.fct_sessions as select cast(n as varchar) as session_id, "
                   "cast(n as bigint) as user_id, cast('2026-01-01 00:00:00' as timestamp) as session_start, "
                   "cast('2026-01-01 00:10:00' as timestamp) as session_end, 1 as event_count, false as has_purchase, "
                   f"cast(0 as decimal(18,2)) as revenue from generate_series(1, {sessions}) as g(n)")
    engine.execute("create table analytics.fct_daily_metrics as select cast('2026-01-01' as date) as metric_date, "
                   f"'sessions' as metric_name, cast({sessions} as decimal(38,6)) as metric_value")


def test_a_reader_in_a_transaction_sees_the_whole_old_or_the_whole_new_publication(tmp_path, fresh_pg_dsn):
    for engine in (DuckDBEngine(tmp_path / "w.duckdb"), PostgresEngine(fresh_pg_dsn)):
        prepare_engine(engine)
        _seed_audit_area(engine, 100)
        publish_engine(engine, "run-1", "gate-1", {m.name: m for m in published_marts()})
        _seed_audit_area(engine, 250)
        if engine.name == "postgres":
            reader = psycopg.connect(fresh_pg_dsn)
            reader.execute("set transaction isolation level repeatable read")
            read = lambda sql: reader.execute(sql).fetchone()  # noqa: E731
        else:
            reader = duckdb.connect(str(engine.path))
            reader.execute("begin")
            read = lambda sql: reader.execute(engine.sql(sql)).fetchone()  # noqa: E731
        snapshot_sql = ("select (select count(*) from published.fct_sessions), "
                        "(select max(metric_value) from published.fct_daily_metrics)")
        assert read(snapshot_sql) == (100, 100)
        publish_engine(engine, "run-2", "gate-2", {m.name: m for m in published_marts()})
        assert read(snapshot_sql) == (100, 100)  # the open transaction still sees the old publication whole
        reader.commit() if engine.name == "postgres" else reader.execute("commit")
        assert read(snapshot_sql) == (250, 250)
        reader.close()
        engine.close()


def test_a_published_table_whose_columns_no_longer_match_the_contract_is_recreated_whole(tmp_path):
    engine = DuckDBEngine(tmp_path / "w.duckdb")
    try:
        prepare_engine(engine)
        _seed_audit_area(engine, 7)
        engine.execute("create schema if not exists published")
        engine.execute("create table published.fct_sessions (session_id varchar, an_old_column integer)")
        engine.execute("insert into published.fct_sessions values ('stale', 1)")
        models = {m.name: m for m in published_marts()}
        publications = publish_engine(engine, "run-1", "gate-1", models)
        assert engine.table_columns("published", "fct_sessions") == {
            "session_id": "varchar", "user_id": "bigint", "session_start": "timestamp", "session_end": "timestamp",
            "event_count": "integer", "has_purchase": "boolean", "revenue": "decimal(18,2)"}
        assert engine.fetchall("select count(*), min(session_id) from published.fct_sessions") == [(7, "1")]
        sessions = next(p for p in publications if p.table == "fct_sessions")
        assert (sessions.rows, sessions.rows_inserted, sessions.rows_deleted) == (7, 7, 0)
    finally:
        engine.close()


def test_a_publication_hashes_only_the_partitions_it_wrote_and_its_fingerprint_is_the_tables(tmp_path, fresh_pg_dsn):
    marts = {m.name: m for m in published_marts()}
    columns = [c.as_fingerprint_column() for c in marts["fct_sessions"].columns]
    for engine in (DuckDBEngine(tmp_path / "w.duckdb"), PostgresEngine(fresh_pg_dsn)):
        prepare_engine(engine)
        _seed_audit_area(engine, 300)
        engine.execute("update analytics.fct_sessions set session_start = session_start + (user_id % 3) * "
                       "interval '1 day', session_end = session_end + (user_id % 3) * interval '1 day'")
        publish_engine(engine, "run-1", "gate-1", marts)
        engine.execute("update analytics.fct_sessions set revenue = 1 where session_start >= timestamp '2026-01-03'")
        publish_engine(engine, "run-2", "gate-2", marts)
        hashed_by = engine.fetchall("select partition, run_id from evident.partition_fingerprints "
                                    "where table_name = %s order by 1", ["published.fct_sessions"])
        assert hashed_by == [("2026-01-01", "run-1"), ("2026-01-02", "run-1"), ("2026-01-03", "run-2")], engine.name
        stored = engine.fetchall("select run_id, row_count, fingerprint from evident.publications "
                                 "where table_name = 'fct_sessions' order by run_id")
        assert stored[-1][1:] == (300, str(fingerprint(engine, "published.fct_sessions", columns)[1]))
        engine.close()
