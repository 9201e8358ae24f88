"""The gate: Great Expectations suites (expectations/gx) over raw and analytics.* on a real DuckDB file and a real
Postgres database, built by the real loader and dbt project from a generated sample.

One warehouse is landed and built per module (both engines) and the good-path gate runs on it once; the
failure tests plant their defects in a copy of the DuckDB file, or in Postgres inside a try/finally that puts the
row back, so every test sees the same good marts. GX is imported once per process (it costs seconds).
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from evident.engines import DuckDBEngine, PostgresEngine
from evident.engines.postgres import sqlalchemy_url_from_dsn
from evident.errors import ConfigError
from evident.gate.report import CheckResult, GateReport
from evident.gate.runner import run_gate
from evident.gate.store import gate_passed
from evident.gate.suites import gate_targets
from evident.land.step import land
from evident.pipeline.context import open_run, prepare_engine
from evident.project import find_project
from evident.sample import generate_sample
from tests.dbt_helpers import dbt_build
from tests.helpers import settings_for

DEFAULT_PROJECT_DIR = find_project().expectations_dir
GX_DIR = DEFAULT_PROJECT_DIR / "gx"
SUITES = ("raw_app_events", "raw_orders", "stg_app_events", "fct_sessions", "fct_daily_metrics", "fct_orders_daily")


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def module_pg_dsn(postgres_dsn):
    """A database of its own for this module (built once, shared by its tests), dropped afterwards."""
    from tests.pgcluster import dsn_with_dbname

    name = f"t_gate_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield dsn_with_dbname(postgres_dsn, name)
    with psycopg.connect(postgres_dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, module_pg_dsn):
    """Sample → land (both engines) → dbt build (both targets): good marts."""
    root = tmp_path_factory.mktemp("gate_wh")
    settings = settings_for(root, module_pg_dsn)
    generate_sample(settings.landing_dir, events=2000, days=3, seed=5)
    with open_run(settings, "land") as ctx:
        outcomes = land(ctx)
    assert {o.status for o in outcomes} == {"landed"}
    batch_ids = sorted({o.batch_id for o in outcomes})
    for target in ("postgres", "duckdb"):
        outcome = dbt_build(target, duckdb_path=settings.duckdb_path, pg_dsn=module_pg_dsn)
        assert outcome.success, outcome.summary()
    return settings, batch_ids


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The committed GX project, copied so results and Data Docs of the tests stay out of the work tree."""
    dst = tmp_path_factory.mktemp("gx_project")
    shutil.copytree(GX_DIR, dst / "gx", ignore=shutil.ignore_patterns("uncommitted"))
    return dst


@pytest.fixture(scope="module")
def good_gate(warehouse, project):
    """The gate on the good marts, with everything it printed or logged (GX's own loggers included)."""
    settings, batch_ids = warehouse
    engines = [PostgresEngine(settings.postgres_dsn), DuckDBEngine(settings.duckdb_path)]
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        for engine in engines:
            prepare_engine(engine)
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            report = run_gate(engines, "run-good", batch_ids, project_dir=project)
        stored = {e.name: e.fetchall("select engine, suite, expectation_type, column_name, success, batch_ids "
                                     "from evident.gate_results where run_id = %s", ["run-good"])
                  for e in engines}
        passed = {e.name: gate_passed(e, "run-good") for e in engines}
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for engine in engines:
            engine.close()
    return report, stored, passed, output.getvalue()


def duckdb_copy(settings, tmp_path: Path) -> Path:
    path = tmp_path / "copy" / "evident.duckdb"
    path.parent.mkdir(parents=True)
    shutil.copy2(settings.duckdb_path, path)
    return path


def gate_duckdb(path: Path, project: Path, run_id: str) -> tuple[GateReport, list[tuple]]:
    engine = DuckDBEngine(path)
    try:
        report = run_gate([engine], run_id, ["b-1"], project_dir=project)
        rows = engine.fetchall("select expectation_type, column_name, success, observed_value, failing_sample "
                               "from evident.gate_results where run_id = %s and not success", [run_id])
    finally:
        engine.close()
    return report, rows


def failure(report: GateReport, expectation_type: str, column: str | None = None,
            suite: str | None = None, description: str | None = None) -> CheckResult:
    found = [c for c in report.failures if c.expectation_type == expectation_type
             and (column is None or c.column == column) and (suite is None or c.suite == suite)
             and (description is None or description in (c.description or ""))]
    assert found, f"no failure {expectation_type} {column}:\n{report.render()}"
    return found[0]


# ------------------------------------------------------------------------------------------ the project


def test_project_is_one_set_of_suites_for_both_engines_and_nothing_derived_is_kept():
    suites = {p.stem for p in (GX_DIR / "expectations").glob("*.json")}
    assert set(SUITES) <= suites  # (other suites, e.g. reconciliation, may live beside them)
    # validation definitions and checkpoints are derived by each gate, never kept in the project
    assert not list((GX_DIR / "validation_definitions").glob("*.json"))
    assert not list((GX_DIR / "checkpoints").glob("*.json"))
    config = (GX_DIR / "great_expectations.yml").read_text()
    assert "connection_string: ${EVIDENT_GX_POSTGRES_URL}" in config
    assert "connection_string: duckdb:///${EVIDENT_GX_DUCKDB_PATH}" in config
    assert "analytics_enabled: false" in config and "assets:" not in config
    assert "password" not in config.lower()


def test_the_gate_targets_every_source_and_published_model_and_other_models_with_a_suite():
    targets = {t.suite: (t.schema, t.table) for t in gate_targets(find_project())}
    assert targets == {
        "raw_app_events": ("raw", "app_events"), "raw_orders": ("raw", "orders"),
        "fct_daily_metrics": ("analytics", "fct_daily_metrics"), "fct_orders_daily": ("analytics", "fct_orders_daily"),
        "fct_sessions": ("analytics", "fct_sessions"), "stg_app_events": ("analytics", "stg_app_events"),
    }


def test_derived_checkpoints_validate_each_target_with_the_engines_datasource(tmp_path):
    import great_expectations  # noqa: F401  (the datasources below are GX's)

    from evident.engines import gx_duckdb  # noqa: F401
    from evident.gate.context import gate_context

    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema raw; create table raw.app_events (x integer)")  # raw.orders is missing
    con.close()
    targets = [t for t in gate_targets(find_project()) if t.schema == "raw"]
    os.environ["EVIDENT_GX_DUCKDB_PATH"] = str(path)
    try:
        context, failures = gate_context(GX_DIR, ["duckdb"], targets)
        checkpoint = context.checkpoints.get("gate_duckdb")
        assert [v.name for v in checkpoint.validation_definitions] == ["duckdb__raw_app_events"]
        definition = checkpoint.validation_definitions[0]
        assert (definition.suite.name, definition.data.data_asset.datasource.name) == ("raw_app_events", "duckdb")
        assert [suite for suite, _ in failures["duckdb"]] == ["raw_orders"]
        assert "raw.orders" in failures["duckdb"][0][1]
    finally:
        del os.environ["EVIDENT_GX_DUCKDB_PATH"]


def test_a_source_or_published_model_without_a_suite_stops_the_gate_naming_the_command(tmp_path):
    shutil.copytree(GX_DIR / "expectations", tmp_path / "expectations")
    (tmp_path / "expectations" / "raw_orders.json").unlink()
    (tmp_path / "expectations" / "fct_sessions.json").unlink()
    with pytest.raises(ConfigError) as raised:
        gate_targets(find_project(), tmp_path / "expectations")
    message = str(raised.value)
    assert "raw source orders: no suite raw_orders — create it with `evident suite init raw_orders`" in message
    assert "published model fct_sessions: no suite fct_sessions — create it with `evident suite init fct_sessions`" \
        in message
    assert raised.value.exit_code == 2


def test_sqlalchemy_url_from_dsn_keeps_every_part():
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url_from_dsn("host=db.example port=6543 dbname=ev user=u password='p w@:/' "
                                           "sslmode=require"))
    assert (url.drivername, url.host, url.port, url.database, url.username, url.password) == \
        ("postgresql+psycopg", "db.example", 6543, "ev", "u", "p w@:/")
    assert url.query == {"sslmode": "require"}
    socket = make_url(sqlalchemy_url_from_dsn("postgresql://u@/ev?host=/var/run/postgresql&port=5433"))
    assert socket.host is None and socket.query == {"host": "/var/run/postgresql", "port": "5433"}


def test_render_names_expectation_column_observed_expected_and_values():
    check = CheckResult("duckdb", "fct_sessions", "expect_column_values_to_be_between", "revenue", False,
                        "1 unexpected of 10 rows (10%)", "min_value=0", '["-5.00"]')
    report = GateReport("r", {"duckdb": ["b"]}, [check])
    text = report.render()
    assert not report.success and "gate FAILED" in text
    for part in ("expect_column_values_to_be_between", "revenue", "1 unexpected of 10 rows", "min_value=0",
                 '["-5.00"]'):
        assert part in text
    assert not GateReport("r", {"duckdb": ["b"]}, []).success  # nothing validated is not a pass


# ------------------------------------------------------------------------------------------ good marts


@pytest.mark.postgres
def test_good_marts_pass_on_both_engines(good_gate):
    report, _, passed, _ = good_gate
    assert report.success, report.render()
    per_engine = {e: [c for c in report.checks if c.engine == e] for e in ("postgres", "duckdb")}
    assert len(per_engine["postgres"]) == len(per_engine["duckdb"]) > 50
    assert {c.suite for c in report.checks} == set(SUITES)
    assert passed == {"postgres": True, "duckdb": True}
    assert "gate PASSED" in report.render()


@pytest.mark.postgres
def test_results_are_stored_in_the_control_plane_of_every_engine(good_gate, warehouse):
    report, stored, _, _ = good_gate
    _, batch_ids = warehouse
    for rows in stored.values():
        assert len(rows) == len(report.checks)
        assert {r[0] for r in rows} == {"postgres", "duckdb"}
        assert all(r[4] for r in rows)
        assert {r[5] for r in rows} == {",".join(batch_ids)}
        assert ("postgres", "fct_daily_metrics", "expect_compound_columns_to_be_unique",
                "metric_date, metric_name", True, ",".join(batch_ids)) in rows


@pytest.mark.postgres
def test_data_docs_show_the_stored_results_of_a_passing_gate(good_gate, project):
    from evident.gate.data_docs import build_data_docs

    report, _, _, _ = good_gate
    assert report.data_docs_index is None  # a passing gate does not re-render the site (see gate.py)
    index = build_data_docs(project)
    assert index == project / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert "fct_daily_metrics" in index.read_text(encoding="utf-8")
    results = list((index.parent / "validations").rglob("*.html"))
    assert any("run-good" in str(p) for p in results), results


def test_stored_validation_results_are_pruned_to_the_newest_runs(tmp_path):
    from evident.gate.data_docs import prune_validation_results

    suite = tmp_path / "gx" / "uncommitted" / "validations" / "fct_sessions"
    for i in range(5):
        run = suite / f"run-{i}" / "20261125T000000Z"
        run.mkdir(parents=True)
        (run / "batch.json").write_text("{}")
        os.utime(suite / f"run-{i}", (1_000_000 + i, 1_000_000 + i))
    assert prune_validation_results(tmp_path, keep=2) == 3
    assert sorted(p.name for p in suite.iterdir()) == ["run-3", "run-4"]
    assert prune_validation_results(tmp_path / "missing") == 0


@pytest.mark.postgres
def test_duckdb_file_is_free_after_the_gate(good_gate, warehouse):
    settings, _ = warehouse
    code = f"import duckdb; duckdb.connect({str(settings.duckdb_path)!r}).execute('select 1').fetchall()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.postgres
def test_password_is_in_no_file_and_no_output(good_gate, warehouse, project):
    report, _, _, output = good_gate
    settings, _ = warehouse
    password = conninfo_to_dict(settings.postgres_dsn)["password"]
    assert password and len(password) >= 8
    leaks = [p for base in (project, DEFAULT_PROJECT_DIR) for p in base.rglob("*")
             if p.is_file() and password.encode() in p.read_bytes()]
    assert leaks == []
    assert "gate PASSED" in output  # the log line of the gate itself was captured
    assert password not in output + report.render()
    assert all(password not in (c.observed + c.expected + c.failing_sample + (c.error or ""))
               for c in report.checks)


# ------------------------------------------------------------------------------------------ failures


@pytest.mark.postgres
def test_negative_revenue_and_duplicated_grain_row_fail_the_gate(warehouse, project, tmp_path):
    settings, _ = warehouse
    path = duckdb_copy(settings, tmp_path)
    with duckdb.connect(str(path)) as con:
        con.execute("update analytics.fct_sessions set revenue = -5 "
                    "where session_id = (select min(session_id) from analytics.fct_sessions)")
        con.execute("insert into analytics.fct_daily_metrics select * from analytics.fct_daily_metrics "
                    "where metric_name = 'events' order by metric_date limit 1")
    report, stored = gate_duckdb(path, project, "run-bad")

    assert not report.success
    revenue = failure(report, "expect_column_values_to_be_between", "revenue", "fct_sessions")
    assert revenue.failing_sample == '["-5.00"]' and revenue.observed.startswith("1 unexpected of")
    assert revenue.expected == "min_value=0.0"
    grain = failure(report, "expect_compound_columns_to_be_unique", "metric_date, metric_name")
    assert '"metric_name": "events"' in grain.failing_sample
    eight = failure(report, "unexpected_rows_expectation", suite="fct_daily_metrics",
                    description="all eight metrics")
    assert '"metrics": 9' in eight.failing_sample  # the failing rows of the SQL check, fetched for the report
    text = report.render()
    for part in ("gate FAILED", "expect_column_values_to_be_between", "revenue", "-5.00",
                 "expect_compound_columns_to_be_unique", "metric_date, metric_name"):
        assert part in text
    assert ("expect_column_values_to_be_between", "revenue", False) in {r[:3] for r in stored}
    assert not any(c.suite in ("raw_app_events", "stg_app_events") for c in report.failures)
    # a failed gate renders the Data Docs site and the report points at it
    assert report.data_docs_index and report.data_docs_index.is_file()
    assert f"Data Docs: {report.data_docs_index}" in text


@pytest.mark.postgres
def test_duplicated_grain_row_fails_the_gate_on_postgres(warehouse, project):
    settings, batch_ids = warehouse
    insert = ("insert into analytics.fct_daily_metrics select * from analytics.fct_daily_metrics "
              "where metric_name = 'revenue' order by metric_date limit 1")
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as con:
        con.execute(insert)
    engine = PostgresEngine(settings.postgres_dsn)
    try:
        report = run_gate([engine], "run-pg-bad", batch_ids, project_dir=project)
        assert not gate_passed(engine, "run-pg-bad")
    finally:
        engine.close()
        with psycopg.connect(settings.postgres_dsn, autocommit=True) as con:  # put the good marts back
            con.execute("delete from analytics.fct_daily_metrics where ctid in (select max(ctid) from "
                        "analytics.fct_daily_metrics group by metric_date, metric_name having count(*) > 1)")
    assert not report.success
    grain = failure(report, "expect_compound_columns_to_be_unique", "metric_date, metric_name")
    assert '"metric_name": "revenue"' in grain.failing_sample
    assert "expect_compound_columns_to_be_unique" in report.render()


@pytest.mark.postgres
def test_metric_errors_are_failures_with_their_message(warehouse, project, tmp_path):
    settings, _ = warehouse
    path = duckdb_copy(settings, tmp_path)
    with duckdb.connect(str(path)) as con:
        con.execute("drop table analytics.fct_daily_metrics")
    report, stored = gate_duckdb(path, project, "run-err")
    assert not report.success
    broken = [c for c in report.failures if c.suite == "fct_daily_metrics"]
    assert broken and all(c.error and "fct_daily_metrics" in c.error for c in broken)
    assert "does not exist" in broken[0].error
    assert all(c.success for c in report.checks if c.suite != "fct_daily_metrics")
    assert "error: " in report.render() and "does not exist" in report.render()
    assert any(r[3].startswith("error: ") for r in stored)


def test_make_docs_builds_the_site_from_the_project_alone(tmp_path):
    from evident.gate.data_docs import build_data_docs

    shutil.copytree(GX_DIR, tmp_path / "gx", ignore=shutil.ignore_patterns("uncommitted"))
    index = build_data_docs(tmp_path)
    assert index == tmp_path / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert index.is_file()
    pages = {p.stem for p in (index.parent / "expectations").glob("*.html")}
    assert set(SUITES) <= pages
