"""The dbt marts equal DESIGN.md's definitions (computed independently in tests/reference_marts.py), on
DuckDB and Postgres, for a sample built around the edge cases: the 1800 s boundary, midnight, duplicate and
conflicting deliveries, purchases without a value, a user with a single event."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from evident.project import find_project

PROJECT = find_project()

try:
    from tests.dbt_helpers import DuckDBRawWarehouse, Event, PostgresRawWarehouse, dbt_build
    from tests.reference_marts import reference_marts, session_id
except ImportError:  # rootdir-less invocation
    from dbt_helpers import DuckDBRawWarehouse, Event, PostgresRawWarehouse, dbt_build  # type: ignore[no-redef]
    from reference_marts import reference_marts, session_id  # type: ignore[no-redef]

T0 = datetime(2024, 3, 1, 23, 0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


BATCH_1 = [
    Event("a1", 1, at(0), "signup"),
    Event("a2", 1, at(1800), "view_page"),  # exactly 1800 s: same session
    Event("a3", 1, at(3601), "purchase", Decimal("19.99")),  # 1801 s: new session, after midnight
    Event("a3", 1, at(3601), "purchase", Decimal("19.99")),  # duplicate delivery in the same batch
    Event("b1", 2, at(10), "login"),
    Event("b2", 2, at(600), "purchase", None),  # a purchase without a value: revenue 0, but it converts
    Event("c1", 3, at(7200.000001), "view_page"),  # a user with a single event
]
BATCH_2 = [
    Event("a3", 1, at(3601), "purchase", Decimal("99.00")),  # conflicting duplicate: the first landed wins
    Event("a0", 1, at(-1800), "login"),  # late: extends user 1's first session backwards
    Event("b1", 2, at(10), "login"),  # duplicate delivery in a later batch
    Event("b3", 2, at(2401), "logout"),  # 1801 s after b2: a new session
    Event("d1", 4, at(-86400 * 3), "purchase", Decimal("0.01")),  # three days late, new date
]


def land_and_build(warehouse, target: str, duckdb_path, pg_dsn=None):
    warehouse.create_raw()
    warehouse.land(BATCH_1, land_seq=1)
    first = dbt_build(target, duckdb_path=duckdb_path, pg_dsn=pg_dsn)
    assert first.success, first.summary()
    warehouse.land(BATCH_2, land_seq=2)
    second = dbt_build(target, duckdb_path=duckdb_path, pg_dsn=pg_dsn)
    assert second.success, second.summary()
    return warehouse.marts()


def test_session_id_is_md5_of_user_and_microsecond_start():
    # md5('1|2024-03-01T10:00:00.000000Z')
    assert session_id(1, datetime(2024, 3, 1, 10)) == "c50cc56db347691c0b34f8af9a20708e"


def test_duckdb_marts_equal_the_reference(tmp_path):
    path = tmp_path / "w.duckdb"
    marts = land_and_build(DuckDBRawWarehouse(path), "duckdb", path)
    assert marts == reference_marts(BATCH_1 + BATCH_2)


@pytest.mark.postgres
def test_postgres_marts_equal_the_reference_and_duckdb(tmp_path, fresh_pg_dsn):
    marts = land_and_build(PostgresRawWarehouse(fresh_pg_dsn), "postgres", tmp_path / "unused.duckdb", fresh_pg_dsn)
    assert marts == reference_marts(BATCH_1 + BATCH_2)


def test_replay_from_an_earlier_land_seq_changes_nothing(tmp_path):
    path = tmp_path / "w.duckdb"
    warehouse = DuckDBRawWarehouse(path)
    before = land_and_build(warehouse, "duckdb", path)
    with_watermark = warehouse.marts(with_watermark=True)

    replay = dbt_build(
        "duckdb", duckdb_path=path, pg_dsn=None, vars={"evident_since_land_seq": 0},
        exclude="resource_type:unit_test",
    )

    assert replay.success, replay.summary()
    assert warehouse.marts() == before
    assert warehouse.marts(with_watermark=True) == with_watermark


def test_plain_dbt_build_command_works(tmp_path):
    """`dbt build --project-dir dbt_project --profiles-dir profiles` (default target duckdb) from the repo root."""
    path = tmp_path / "w.duckdb"
    warehouse = DuckDBRawWarehouse(path)
    warehouse.create_raw()
    warehouse.land(BATCH_1, land_seq=1)
    env = {**os.environ, "EVIDENT_DUCKDB_PATH": str(path)}
    dbt = os.path.join(os.path.dirname(sys.executable), "dbt")
    result = subprocess.run(
        [dbt, "build", "--project-dir", str(PROJECT.dbt_project_dir), "--profiles-dir", str(PROJECT.profiles_dir),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        cwd=PROJECT.root, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert warehouse.marts() == reference_marts(BATCH_1)


# ------------------------------------------------------------------------------------------ check window
# After BATCH_2 (land_seq 2), the sessions and dates it changed: user 1's first session (22:30–23:30, a0 is
# late), user 2's second session (b3, 23:40:01; the one before it ends 23:10:00), user 4's session and date
# 2024-02-27 (d1). Each violation below is planted in what batch 2 changed; the tests as `evident build` runs
# them after batch 2 (check mark 1) must fail with exactly the named tests, and pass again once it is undone.
SET_CHANGED_SESSION = "update analytics.fct_sessions set {} where user_id = {user_id} and last_land_seq = 2"
RELATIONSHIPS = "relationships_fct_sessions_user_id__user_id__ref_stg_app_events_"
PLANTED_IN_THE_CHANGE = [
    ("a changed session touching the next one",
     SET_CHANGED_SESSION.format("session_end = timestamp '2024-03-01 23:40:00'", user_id=1),
     SET_CHANGED_SESSION.format("session_end = timestamp '2024-03-01 23:30:00'", user_id=1),
     {"assert_sessions_do_not_overlap"}),
    ("a changed session touching the one before",
     SET_CHANGED_SESSION.format("session_start = timestamp '2024-03-01 23:20:00'", user_id=2),
     SET_CHANGED_SESSION.format("session_start = timestamp '2024-03-01 23:40:01'", user_id=2),
     {"assert_sessions_do_not_overlap"}),
    ("two sessions of a user with the same start",
     "insert into analytics.fct_sessions select 'planted', user_id, session_start, session_end, event_count, false, 0, "
     "last_land_seq from analytics.fct_sessions where user_id = 4",
     "delete from analytics.fct_sessions where session_id = 'planted'",
     {"assert_sessions_do_not_overlap"}),
    ("a changed session of a user without events",
     "update analytics.fct_sessions set user_id = 999 where user_id = 4",
     "update analytics.fct_sessions set user_id = 4 where user_id = 999",
     {RELATIONSHIPS}),
    ("a touched date missing a metric",
     "delete from analytics.fct_daily_metrics where metric_date = date '2024-02-27' and metric_name = 'signups'",
     "insert into analytics.fct_daily_metrics values (date '2024-02-27', 'signups', 0, 2)",
     {"assert_every_event_date_has_all_metrics"}),
    ("a touched date's events miscounted",
     "update analytics.fct_daily_metrics set metric_value = metric_value + 1 "
     "where metric_date = date '2024-02-27' and metric_name = 'events'",
     "update analytics.fct_daily_metrics set metric_value = metric_value - 1 "
     "where metric_date = date '2024-02-27' and metric_name = 'events'",
     {"assert_daily_events_match_staging"}),
    ("a touched date's revenue wrong",
     "update analytics.fct_daily_metrics set metric_value = metric_value + 1 "
     "where metric_date = date '2024-02-27' and metric_name = 'revenue'",
     "update analytics.fct_daily_metrics set metric_value = metric_value - 1 "
     "where metric_date = date '2024-02-27' and metric_name = 'revenue'",
     {"assert_daily_events_match_staging", "assert_revenue_identity"}),  # per date, and the totals
]
# two overlapping sessions that are both older than the mark: a full refresh's check (mark 0) finds them
PLANTED_BEFORE_THE_MARK = (
    "insert into analytics.fct_sessions values ('planted', 3, timestamp '2024-03-02 01:10:00', "
    "timestamp '2024-03-02 01:20:00', 1, false, 0, 1)",
    "delete from analytics.fct_sessions where session_id = 'planted'",
)


def failing_tests(target: str, duckdb_path, pg_dsn, since: int) -> set[str]:
    outcome = dbt_build(target, duckdb_path=duckdb_path, pg_dsn=pg_dsn, command="test",
                        exclude="resource_type:unit_test", check_since_land_seq=since)
    return {f.name[:len(RELATIONSHIPS)] if f.name.startswith(RELATIONSHIPS) else f.name for f in outcome.failures}


def check_window_catches_what_changed(warehouse, target: str, duckdb_path, pg_dsn=None):
    land_and_build(warehouse, target, duckdb_path, pg_dsn)
    assert failing_tests(target, duckdb_path, pg_dsn, since=1) == set()
    for what, plant, undo, expected in PLANTED_IN_THE_CHANGE:
        warehouse._execute(plant)
        assert failing_tests(target, duckdb_path, pg_dsn, since=1) == expected, what
        warehouse._execute(undo)
    plant, undo = PLANTED_BEFORE_THE_MARK
    warehouse._execute(plant)
    assert failing_tests(target, duckdb_path, pg_dsn, since=1) == set()  # not what batch 2 changed
    assert failing_tests(target, duckdb_path, pg_dsn, since=0) == {"assert_sessions_do_not_overlap"}
    warehouse._execute(undo)
    assert failing_tests(target, duckdb_path, pg_dsn, since=0) == set()


def test_duckdb_narrowed_data_tests_fail_on_a_violation_in_what_changed(tmp_path):
    path = tmp_path / "w.duckdb"
    check_window_catches_what_changed(DuckDBRawWarehouse(path), "duckdb", path)


@pytest.mark.postgres
def test_postgres_narrowed_data_tests_fail_on_a_violation_in_what_changed(tmp_path, fresh_pg_dsn):
    check_window_catches_what_changed(PostgresRawWarehouse(fresh_pg_dsn), "postgres", tmp_path / "unused.duckdb",
                                      fresh_pg_dsn)
