"""A generated corpus of hostile input: the run never crashes, nothing bad reaches raw.app_events, every bad
record is quarantined with its reason code and line, good records in the same file still land — unless the
batch exceeds the quarantine threshold, and then the batch fails and says so."""
from __future__ import annotations

import pytest

from tests.helpers import query, run_cli, settings_for
from tests.hostile import corpus

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
        data, bad = case.content()
        (settings.landing_dir / f"{case.name}.jsonl").write_bytes(data)
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
        quarantined = query(settings, engine, "select line_number, reason_code from raw.app_events_quarantine "
                                              f"where source_file = '{case.name}.jsonl' order by line_number")
        assert quarantined == expected[case.name], engine
        rows = query(settings, engine, f"select count(*) from raw.app_events where source_file = '{case.name}.jsonl'")
        assert rows == [(case.good_rows,)], engine
        state = query(settings, engine, f"select state from evident.batches where source_file = '{case.name}.jsonl'")
        assert state == [("failed" if case.verdict == "rejected" else "landed",)], engine


def test_injection_text_lands_verbatim_as_data(landed):
    settings, _, _ = landed
    for engine in settings.engines:
        assert query(settings, engine, "select event_id, app_version from raw.app_events "
                                       "where source_file = 'sql_injection.jsonl' and event_id like '%drop table%'") \
            == [("'; drop table raw.app_events; --", "'; drop table raw.app_events; --")]
