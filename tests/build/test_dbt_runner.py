"""evident.dbt_runner: DSN → profile env vars, the dbt command line, and failures surfaced by name."""
from __future__ import annotations

from datetime import datetime

import pytest

from evident.build.dbt import build_args, default_target_dir, run_dbt_build
from evident.engines.postgres import dbt_env_from_dsn
from evident.errors import ConfigError
from evident.project import find_project

try:
    from tests.dbt_helpers import DuckDBRawWarehouse, Event, dbt_build
except ImportError:  # rootdir-less invocation
    from dbt_helpers import DuckDBRawWarehouse, Event, dbt_build  # type: ignore[no-redef]


def test_dsn_url_becomes_profile_env_vars():
    env = dbt_env_from_dsn("postgresql://evident:s3cr%40t@db.example:6543/warehouse?sslmode=disable")
    assert env == {
        "EVIDENT_PG_HOST": "db.example",
        "EVIDENT_PG_PORT": "6543",
        "EVIDENT_PG_USER": "evident",
        "EVIDENT_PG_PASSWORD": "s3cr@t",
        "EVIDENT_PG_DBNAME": "warehouse",
        "PGSSLMODE": "disable",  # libpq reads it; profiles.yml has no field for it
    }


def test_key_value_dsn_becomes_profile_env_vars_and_missing_parts_are_left_out():
    env = dbt_env_from_dsn("host=127.0.0.1 dbname=evident user=me password='a b'")
    assert env == {
        "EVIDENT_PG_HOST": "127.0.0.1",
        "EVIDENT_PG_USER": "me",
        "EVIDENT_PG_PASSWORD": "a b",
        "EVIDENT_PG_DBNAME": "evident",
    }


def test_unparsable_dsn_is_a_config_error_that_does_not_echo_the_dsn():
    with pytest.raises(ConfigError) as info:
        dbt_env_from_dsn("host=x password=hunter2 ===")
    assert "hunter2" not in str(info.value)


def test_command_line_uses_repo_project_profiles_and_a_target_path_per_target():
    args = build_args("postgres", full_refresh=True, vars={"evident_since_land_seq": 3}, select="fct_sessions+")
    default_dir = build_args("duckdb")
    per_warehouse = default_target_dir("duckdb", "/data/a/evident.duckdb")
    project = find_project()
    assert args[:5] == ["build", "--project-dir", str(project.dbt_project_dir), "--profiles-dir",
                        str(project.profiles_dir)]
    assert args[args.index("--target") + 1] == "postgres"
    assert args[args.index("--target-path") + 1].endswith("target/postgres")
    assert "--full-refresh" in args
    assert args[args.index("--vars") + 1] == '{"evident_since_land_seq": 3}'
    assert args[args.index("--select") + 1] == "fct_sessions+"
    assert default_dir[default_dir.index("--target-path") + 1].endswith("target/duckdb")
    assert per_warehouse.parent.name == "work" and per_warehouse.name.startswith("duckdb-")
    assert per_warehouse != default_target_dir("duckdb", "/data/b/evident.duckdb")


def test_postgres_target_without_dsn_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        run_dbt_build("postgres", duckdb_path=tmp_path / "w.duckdb", pg_dsn=None)


def test_a_failing_data_test_is_reported_by_name_and_its_dependents_are_skipped(tmp_path):
    warehouse = DuckDBRawWarehouse(tmp_path / "w.duckdb")
    warehouse.create_raw()
    warehouse.land([Event("e1", 1, datetime(2024, 3, 1, 10), "teleport")], land_seq=1)  # not an event type

    outcome = dbt_build("duckdb", duckdb_path=warehouse.path, pg_dsn=None, exclude="resource_type:unit_test")

    assert not outcome.success
    assert [(f.status, f.name) for f in outcome.failures] == [
        ("fail", "accepted_values_stg_app_events_event_type__login__view_page__add_to_cart__purchase__signup__logout")
    ]
    assert "1 failing row" in outcome.failures[0].message
    assert "model.evident.int_sessionised_events" in outcome.skipped
    assert "accepted_values_stg_app_events_event_type" in outcome.summary()
    assert outcome.run_results_path is not None and outcome.run_results_path.exists()


def test_the_check_window_scopes_data_tests_and_a_changed_window_is_re_parsed(tmp_path, monkeypatch):
    """EVIDENT_CHECK_SINCE_LAND_SEQ reaches the compiled tests on every build (dbt re-parses what reads it)."""
    warehouse = DuckDBRawWarehouse(tmp_path / "w.duckdb")
    warehouse.create_raw()
    warehouse.land([Event("e1", 1, datetime(2024, 3, 1, 10), "teleport")], land_seq=1)
    build = lambda since: dbt_build("duckdb", duckdb_path=warehouse.path, pg_dsn=None,  # noqa: E731
                                    exclude="resource_type:unit_test", check_since_land_seq=since)

    assert not build(0).success  # everything checked: the bad row fails
    scoped = build(1)  # only rows landed after 1: the bad row (land_seq 1) is outside the window
    assert "accepted_values_stg_app_events_event_type" not in scoped.summary()
    monkeypatch.setenv("EVIDENT_CHECK_SINCE_LAND_SEQ", "5")  # left in the caller's environment: ignored
    again = dbt_build("duckdb", duckdb_path=warehouse.path, pg_dsn=None, exclude="resource_type:unit_test")
    assert [f.name for f in again.failures][:1] == [
        "accepted_values_stg_app_events_event_type__login__view_page__add_to_cart__purchase__signup__logout"]
