"""`evident run --full-refresh` audits the incremental marts: drift a full refresh finds is reported with its
keys and kinds (evident.build.drift), the full refresh is what gets published, and no drift is quiet.

Real components only: the CLI in a subprocess, real dbt, real DuckDB files, the real Postgres test server.
"""
from __future__ import annotations

import json
import shutil
import uuid
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
import pytest
from psycopg import sql

from evident.config import Settings
from evident.sample import generate_sample
from evident.samples.orders import generate_orders_sample
from tests.helpers import make_project, project_settings, published_marts, query, run_cli, settings_for
from tests.pgcluster import dsn_with_dbname

MARTS = ("fct_daily_metrics", "fct_orders_daily", "fct_sessions")


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """Three days of app events and of orders (late events, out-of-order order versions, duplicate deliveries)."""
    out = tmp_path_factory.mktemp("drift-sample")
    generate_sample(out, events=1500, days=3, seed=14)
    generate_orders_sample(out, orders=300, days=3, seed=14)
    return out


def deliver(sample: Path, settings: Settings, first: bool) -> None:
    """The first delivery day of each source (first=True), or all the rest."""
    for source in ("app_events", "orders"):
        days = sorted(p for p in (sample / source).iterdir() if p.is_dir())
        for day in days[:1] if first else days[1:]:
            shutil.copytree(day, settings.landing_dir / source / day.name, dirs_exist_ok=True)


def execute(settings: Settings, engine: str, statements: list[str]) -> None:
    if engine == "duckdb":
        con = duckdb.connect(str(settings.duckdb_path))
        try:
            for statement in statements:
                con.execute(statement)
        finally:
            con.close()
    else:
        with psycopg.connect(settings.postgres_dsn, autocommit=True) as con:
            for statement in statements:
                con.execute(statement)


def published(settings: Settings, engine: str) -> dict[str, list[tuple]]:
    tables = {}
    for model in published_marts(None):
        cols = ", ".join(c.name for c in model.columns)
        tables[model.name] = query(settings, engine, f"select {cols} from published.{model.name} order by {cols}")
    assert set(tables) == set(MARTS)
    return tables


def side_tables(settings: Settings, engine: str) -> list[str]:
    return [r[0] for r in query(settings, engine, "select table_name from information_schema.tables where "
                                                  "table_schema = 'analytics_incremental' order by 1")]


def drift_rows(settings: Settings, engine: str, run_id: str) -> list[tuple]:
    return sorted(query(settings, engine, "select engine, model, partition, status, keys_missing, keys_extra, "
                                          "keys_different, keys_duplicated, detail from evident.drift_reports "
                                          f"where run_id = '{run_id}'"))


def last_run_id(settings: Settings, engine: str) -> str:
    return query(settings, engine, "select max(run_id) from evident.runs")[0][0]


def tamper(settings: Settings, engine: str) -> dict[str, str]:
    """Drift planted by hand in the incremental marts — and in what they had published, as drift that passed
    the gate would have been: a daily metric deleted, a session's revenue altered, an orders row that no
    order explains. Returns the keys (as the report writes them)."""
    metric_date = query(settings, engine,
                        "select cast(min(metric_date) as varchar) from analytics.fct_daily_metrics")[0][0]
    session_id, revenue, start = query(settings, engine, "select session_id, cast(revenue as varchar), "
                                                         "cast(cast(session_start as date) as varchar) from "
                                                         "analytics.fct_sessions order by session_id limit 1")[0]
    statements = []
    for schema, audit in (("analytics", ", 1"), ("published", "")):
        statements += [
            f"delete from {schema}.fct_daily_metrics where metric_date = '{metric_date}' and metric_name = 'events'",
            f"update {schema}.fct_sessions set revenue = revenue + 1 where session_id = '{session_id}'",
            f"insert into {schema}.fct_orders_daily (order_date, status, orders, amount"
            f"{', last_land_seq' if audit else ''}) values ('2001-01-01', 'refunded', 1, 9.99{audit})",
        ]
    execute(settings, engine, statements)
    return {"metric_date": metric_date, "session_id": session_id, "revenue": revenue, "session_date": start}


def expected_drift(engine: str, planted: dict[str, str]) -> list[tuple]:
    """What the drift report must say about the planted rows, per (engine, model, partition)."""
    new_revenue = str(Decimal(planted["revenue"]) + 1)
    return [
        (engine, "fct_daily_metrics", "*", "drift", 1, 0, 0, 0, None),
        (engine, "fct_daily_metrics", planted["metric_date"], "drift", 1, 0, 0, 0,
         [{"key": f"{planted['metric_date']} | events", "kind": "missing"}]),
        (engine, "fct_orders_daily", "*", "drift", 0, 1, 0, 0, None),
        (engine, "fct_orders_daily", "2001-01-01", "drift", 0, 1, 0, 0,
         [{"key": "2001-01-01 | refunded", "kind": "extra"}]),
        (engine, "fct_sessions", "*", "drift", 0, 0, 1, 0, None),
        (engine, "fct_sessions", planted["session_date"], "drift", 0, 0, 1, 0,
         [{"key": planted["session_id"], "kind": "different", "columns": ["revenue"],
           "incremental": {"revenue": new_revenue}, "full_refresh": {"revenue": planted["revenue"]}}]),
    ]


def reported(rows: list[tuple]) -> list[tuple]:
    """Drift report rows with the listed keys (None for a model's verdict row)."""
    return [(*r[:8], json.loads(r[8])["keys"] if r[2] != "*" else None) for r in rows]


@pytest.fixture
def second_pg_dsn(postgres_dsn: str):
    """Another brand-new database on the test server (for the clean warehouse beside the tampered one)."""
    name = f"t_{uuid.uuid4().hex}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield dsn_with_dbname(postgres_dsn, name)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(params=["duckdb", "postgres"], ids=["duckdb-only", "duckdb-and-postgres"])
def warehouses(request, tmp_path) -> tuple[Settings, Settings]:
    """(the warehouse that runs incrementally, a clean one for the reference full refresh): DuckDB alone, or
    DuckDB and Postgres."""
    pg = request.param == "postgres"
    dsn = request.getfixturevalue("fresh_pg_dsn") if pg else None
    clean_dsn = request.getfixturevalue("second_pg_dsn") if pg else None
    return settings_for(tmp_path / "incremental", dsn), settings_for(tmp_path / "clean", clean_dsn)


def test_drift_planted_in_the_incremental_marts_is_reported_by_key_and_kind_and_the_full_refresh_is_published(
        warehouses, sample):
    settings, clean = warehouses
    json_logs = not settings.postgres_dsn  # DuckDB alone: under json logs; both engines: text
    for first in (True, False):
        deliver(sample, settings, first)
        result = run_cli(settings, "run")
        assert result.returncode == 0, result.stdout + result.stderr
    planted = {engine: tamper(settings, engine) for engine in settings.engines}

    args = ["--log-format", "json"] if json_logs else []
    # DuckDB alone also asks for the drift to fail the run: exit 1, after the full refresh was published.
    args += ["run", "--full-refresh", *(["--fail-on-drift"] if json_logs else [])]
    refresh = run_cli(settings, *args)
    assert refresh.returncode == (1 if json_logs else 0), refresh.stdout + refresh.stderr
    run_id = last_run_id(settings, settings.engines[0])
    if json_logs:
        lines = [json.loads(line) for line in (refresh.stdout + refresh.stderr).splitlines()]
        assert all(line["run_id"] == run_id for line in lines)
        finished = next(line for line in lines if line.get("event") == "run_finished")
        text = finished["message"]
        assert finished["summary"]["drift"]["status"] == "drift"
        assert finished["summary"]["error"]["reason"] == "incremental_drift"
        assert {s["step"] for s in lines if s.get("event") == "step_finished"} >= {"incremental", "drift"}
    else:
        text = refresh.stdout
    for engine, keys in planted.items():
        assert f"DRIFT [{engine}] fct_daily_metrics: 1 partition(s), keys 1 missing" in text
        assert f"DRIFT [{engine}] fct_orders_daily: 1 partition(s), keys 1 extra" in text
        assert f"DRIFT [{engine}] fct_sessions: 1 partition(s), keys 1 different" in text
        session_line = next(line for line in text.splitlines() if keys["session_id"] in line)
        assert "different" in session_line and "revenue:" in session_line, session_line

    expected = sorted(row for engine in settings.engines for row in expected_drift(engine, planted[engine]))
    for engine in settings.engines:
        # Every engine stores the whole report (both engines' findings), as reconciliation does.
        assert reported(drift_rows(settings, engine, run_id)) == expected, engine
        # The incremental tables that drifted stay beside as evidence.
        assert side_tables(settings, engine) == list(MARTS)

    # The published result is a clean full refresh over the same raw rows.
    deliver(sample, clean, True)
    deliver(sample, clean, False)
    reference = run_cli(clean, "run", "--full-refresh")
    assert reference.returncode == 0, reference.stdout + reference.stderr
    assert "drift: nothing to compare" in reference.stdout
    for engine in settings.engines:
        assert published(settings, engine) == published(clean, engine), engine
        assert {r[3] for r in drift_rows(clean, engine, last_run_id(clean, engine))} == {"not_compared"}


def test_a_full_refresh_after_untampered_incremental_runs_reports_no_drift(tmp_path, fresh_pg_dsn, sample):
    """Also when the full-refresh run itself lands new batches (the incremental marts are brought up to them
    first): no drift, even with --fail-on-drift, and nothing is left beside the marts."""
    settings = settings_for(tmp_path, fresh_pg_dsn)
    deliver(sample, settings, True)
    first = run_cli(settings, "run")
    assert first.returncode == 0, first.stdout + first.stderr
    deliver(sample, settings, False)
    refresh = run_cli(settings, "run", "--full-refresh", "--fail-on-drift", "--json")
    assert refresh.returncode == 0, refresh.stdout + refresh.stderr
    summary = json.loads(refresh.stdout)
    assert summary["drift"]["status"] == "no_drift" and summary["exit_code"] == 0
    assert summary["drift"]["caught_up"] == {"postgres": 4, "duckdb": 4}
    assert "drift: none — the incremental marts equal the full refresh (3 model(s) on duckdb, postgres; new " \
        "batches built incrementally first: duckdb 4, postgres 4)" in refresh.stderr
    assert "DRIFT" not in refresh.stderr and "WARNING" not in refresh.stderr
    run_id = summary["run_id"]
    for engine in settings.engines:
        rows = drift_rows(settings, engine, run_id)
        assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
            (e, m, "*", "no_drift") for e in ("duckdb", "postgres") for m in MARTS]
        assert side_tables(settings, engine) == []


def test_fail_on_drift_needs_full_refresh(tmp_path):
    result = run_cli(settings_for(tmp_path), "run", "--fail-on-drift")
    assert result.returncode == 2
    assert "--fail-on-drift needs --full-refresh" in result.stderr


def test_an_incremental_run_that_fails_before_the_full_refresh_is_noted_and_the_full_refresh_goes_on(tmp_path,
                                                                                                     sample):
    """The full refresh is what repairs a model that cannot run incrementally any more: its failing catch-up
    leaves the models not compared (a note, not drift; exit 0 even with --fail-on-drift) and the full refresh is
    built, gated and published."""
    project = make_project(tmp_path / "project")
    settings = project_settings(project)
    deliver(sample, settings, True)
    first = run_cli(settings, "run")
    assert first.returncode == 0, first.stdout + first.stderr
    # fct_orders_daily now fails whenever it runs incrementally (a column its incremental branch reads is gone).
    model = project / "dbt_project" / "models" / "marts" / "fct_orders_daily.sql"
    text = model.read_text()
    broken = "select no_such_column as since_land_seq"
    model.write_text(text.replace("select {{ evident.land_seq_watermark('last_land_seq') }} as since_land_seq",
                                  broken))
    assert broken in model.read_text()
    deliver(sample, settings, False)
    refresh = run_cli(settings, "run", "--full-refresh", "--fail-on-drift")
    assert refresh.returncode == 0, refresh.stdout + refresh.stderr
    assert "drift: nothing to compare" in refresh.stdout
    assert "not compared [duckdb] fct_orders_daily: the incremental run that would bring it up to date failed" \
        in refresh.stdout
    assert "no_such_column" in refresh.stderr  # the warning says why
    rows = drift_rows(settings, "duckdb", last_run_id(settings, "duckdb"))
    assert [(r[1], r[3]) for r in rows] == [(m, "not_compared") for m in MARTS]
    assert side_tables(settings, "duckdb") == []
    # What was published is the full refresh over every delivery.
    clean = settings_for(tmp_path / "clean")
    deliver(sample, clean, True)
    deliver(sample, clean, False)
    assert run_cli(clean, "run", "--full-refresh").returncode == 0
    assert published(settings, "duckdb") == published(clean, "duckdb")
