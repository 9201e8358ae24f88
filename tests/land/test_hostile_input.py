"""A generated corpus of hostile input: the run never crashes, nothing bad reaches raw.app_events, every bad
record is quarantined with its reason code, line and raw text as delivered, good records in the same file still
land — unless the batch exceeds the quarantine threshold, and then the batch fails and says so."""
from __future__ import annotations

import pytest

from evident.land.step import land
from evident.pipeline.context import open_run
from tests.helpers import query, run_cli, settings_for, source_dir
from tests.hostile import ORDERS_HEADER, corpus, stored_raw_text

CASES = corpus()


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def landed(request, tmp_path_factory):
    """Every case file landed in one `evident land` (DuckDB alone, or with Postgres)."""
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else None
    if dsn:
        import psycopg

        name = "hostile_corpus"
        with psycopg.connect(dsn, autocommit=True) as con:
            con.execute(f"drop database if exists {name} with (force)")
            con.execute(f"create database {name}")
        dsn = psycopg.conninfo.make_conninfo(dsn, dbname=name)
    settings = settings_for(tmp_path_factory.mktemp(request.param), dsn)
    settings.landing_dir.mkdir(parents=True)
    expected = {}
    for case in CASES:
        data, bad = case.content_with_raw()
        (source_dir(settings, case.source) / case.file_name).write_bytes(data)
        expected[case.name] = bad
    result = run_cli(settings, "land")
    return settings, expected, result


def test_the_land_finishes_with_a_clear_verdict_and_no_traceback(landed):
    _, _, result = landed
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert result.returncode == 1  # two cases exceed the threshold on purpose
    assert output.count("REJECTED") == 2 * len(landed[0].engines)
    assert "renamed_field.jsonl" in output and "every_line_bad.jsonl" in output


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_hostile_case_is_quarantined_exactly_and_good_rows_still_land(landed, case):
    settings, expected, _ = landed
    for engine in settings.engines:
        quarantined = query(settings, engine, "select line_number, reason_code, raw_text "
                                              f"from raw.{case.source}_quarantine "
                                              f"where source_file = '{case.source_file}' order by line_number")
        assert [(n, reason) for n, reason, _ in quarantined] == \
            [(n, reason) for n, reason, _ in expected[case.name]], engine
        # the raw text exactly as delivered (bytes that are not UTF-8 escaped as \xNN, NUL as \x00)
        assert [raw for _, _, raw in quarantined] == [stored_raw_text(raw) for _, _, raw in expected[case.name]]
        rows = query(settings, engine,
                     f"select count(*) from raw.{case.source} where source_file = '{case.source_file}'")
        assert rows == [(case.good_rows,)], engine
        state = query(settings, engine, f"select state from evident.batches where source_file = '{case.source_file}'")
        assert state == [("failed" if case.verdict == "rejected" else "landed",)], engine


def test_injection_text_lands_verbatim_as_data(landed):
    settings, _, _ = landed
    for engine in settings.engines:
        assert query(settings, engine, "select event_id, app_version from raw.app_events "
                                       "where source_file = 'app_events/sql_injection.jsonl' "
                                       "and event_id like '%drop table%'") \
            == [("'; drop table raw.app_events; --", "'; drop table raw.app_events; --")]


def test_a_conflict_with_an_earlier_batch_keeps_the_first_row_and_the_later_line_as_delivered(landed):
    settings, _, _ = landed
    for engine in settings.engines:
        assert query(settings, engine, "select source_file, value, properties from raw.app_events "
                                       "where event_id = 'conflict-1'") == \
            [("app_events/conflict_earlier_batch_1.jsonl", 5, '{"cart":[1,2],"note":"first"}')]


def test_both_engines_hold_the_same_rows_and_quarantine(landed):
    settings, _, _ = landed
    if len(settings.engines) < 2:
        pytest.skip("DuckDB only")
    for sql in ("select idempotency_key, event_id, user_id, event_ts, event_type, value, app_version, properties, "
                "payload_sha256, source_file, source_line from raw.app_events order by idempotency_key",
                "select source_file, line_number, reason_code, message, raw_text, idempotency_key "
                "from raw.app_events_quarantine order by source_file, line_number"):
        assert query(settings, "postgres", sql) == query(settings, "duckdb", sql)


# A clean file of each source, named to sort after every hostile case file: (name, bytes, its id column).
CLEAN = {
    "app_events": ("zz_clean.jsonl",
                   b'{"event_id":"clean","user_id":5,"event_ts":"2026-03-01T00:00:00Z","event_type":"login"}\n',
                   "event_id"),
    "orders": ("zz_clean.csv", ORDERS_HEADER + b"\nclean,5,paid,1.00,EUR,2026-03-01T00:00:00Z,2026-03-01T01:00:00Z,\n",
               "order_id"),
}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_after_any_hostile_file_the_files_after_it_land_and_a_rerun_goes_on(case, tmp_path):
    """A record that crashed the land made every rerun crash on it too, and the files after it never landed."""
    settings = settings_for(tmp_path)
    settings.landing_dir.mkdir(parents=True)
    (source_dir(settings, case.source) / case.file_name).write_bytes(case.content()[0])
    clean_name, clean, key_column = CLEAN[case.source]
    clean_file = f"{case.source}/{clean_name}"  # sorts after the hostile file
    (source_dir(settings, case.source) / clean_name).write_bytes(clean)
    for attempt in ("first", "rerun"):
        with open_run(settings, "land") as ctx:
            outcomes = {o.source_file: o.status for o in land(ctx)}
        if attempt == "first":
            assert outcomes == {case.source_file: "rejected" if case.verdict == "rejected" else "landed",
                                clean_file: "landed"}
        else:
            assert outcomes == {case.source_file: "previously_rejected" if case.verdict == "rejected" else "unchanged",
                                clean_file: "unchanged"}
    assert query(settings, "duckdb", "select source_file, state from evident.batches order by 1") == \
        [(case.source_file, "failed" if case.verdict == "rejected" else "landed"), (clean_file, "landed")]
    assert query(settings, "duckdb",
                 f"select {key_column} from raw.{case.source} where source_file = '{clean_file}'") == [("clean",)]
