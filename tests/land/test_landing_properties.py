"""Property test of landing: generated files of valid events with hostile lines mixed in (arbitrary bytes,
arbitrary JSON, mutations of valid events: escapes, huge numbers, deep nesting, whitespace, duplicate keys,
surrogates, NaN, control characters, CRLF, BOM, truncation) land on DuckDB and a real Postgres.

For every line that is not whitespace only there is exactly one outcome — a raw row, a quarantine row whose
raw_text is the line as delivered (escaped only as documented), or an exact duplicate of a landed row — the land
never crashes, a batch fails only over the quarantine threshold, a rerun changes nothing, and both engines hold
the same raw and quarantine rows. Bounded: EVIDENT_DB_PROPERTY_EXAMPLES (default 30) examples in-process and a
few through the CLI (exit codes).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from evident.land.contracts import load_contract
from evident.land.step import land
from evident.land.validation import KEY, PAYLOAD, Rejection, Row, Validator
from evident.pipeline.context import open_run
from tests.helpers import RAW_DATA_COLUMNS, query, run_cli, settings_for, source_dir
from tests.hostile import delivered_lines, landing_files, stored_raw_text

pytestmark = pytest.mark.postgres

DB_EXAMPLES = int(os.environ.get("EVIDENT_DB_PROPERTY_EXAMPLES", "30"))
CLI_EXAMPLES = int(os.environ.get("EVIDENT_CLI_PROPERTY_EXAMPLES", "3"))
DB = settings(max_examples=DB_EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
CONTRACT = load_contract()
VALIDATOR = Validator(CONTRACT)


def outcome(line: bytes) -> Row | Rejection:
    try:
        return VALIDATOR.from_json_line(line)
    except Rejection as rej:
        return rej


def reset_postgres(dsn: str) -> None:
    """An empty database again (one fresh_pg_dsn serves every example)."""
    with psycopg.connect(dsn, autocommit=True) as con:
        schemas = con.execute("select nspname from pg_namespace where nspname not like 'pg\\_%' "
                              "and nspname not in ('information_schema', 'public')").fetchall()
        for (schema,) in schemas:
            con.execute(f'drop schema "{schema}" cascade')


# Files are named here by their name inside app_events/ (the folder its contract routes).
SOURCE_FILE = "replace(source_file, 'app_events/', '')"


def snapshot(settings, engine: str) -> dict[str, list[tuple]]:
    return {
        "raw": query(settings, engine, f"select {', '.join(RAW_DATA_COLUMNS)}, batch_id, {SOURCE_FILE}, source_line "
                                       "from raw.app_events order by idempotency_key"),
        "quarantine": query(settings, engine, f"select batch_id, {SOURCE_FILE}, line_number, reason_code, message, "
                                              "raw_text, idempotency_key from raw.app_events_quarantine "
                                              "order by source_file, line_number"),
        "batches": query(settings, engine, f"select batch_id, {SOURCE_FILE}, state, rows_in, rows_landed, "
                                           "rows_quarantined, rows_duplicate from evident.batches "
                                           "order by source_file"),
    }


def check_one_outcome_per_line(files: dict[str, bytes], snap: dict[str, list[tuple]]) -> None:
    """The oracle: each delivered line, read on its own by the validator, against what the engine holds."""
    key_at = RAW_DATA_COLUMNS.index("idempotency_key")
    payload_at = RAW_DATA_COLUMNS.index("payload_sha256")
    n = len(RAW_DATA_COLUMNS)
    raw = {(r[n + 1], r[n + 2]): (r[key_at], r[payload_at]) for r in snap["raw"]}
    assert len(raw) == len(snap["raw"])  # one raw row per (file, line) at most
    quarantine = {(q[1], q[2]): (q[3], q[5]) for q in snap["quarantine"]}
    assert len(quarantine) == len(snap["quarantine"])
    batches = {b[1]: b for b in snap["batches"]}
    assert sorted(batches) == sorted(files)  # every file was processed, each as one batch
    for name in sorted(files):  # landed in this (path) order: "first delivery wins"
        lines = delivered_lines(files[name])
        _, _, state, rows_in, rows_landed, rows_quarantined, rows_duplicate = batches[name]
        landed_before = {key: payload for (file, _), (key, payload) in raw.items() if file < name}
        assert rows_in == len(lines)
        assert {line for file, line in raw if file == name} | {line for file, line in quarantine if file == name} \
            <= {number for number, _ in lines}
        first_of: dict[str, tuple[int, str]] = {}  # key → (line, payload) of its first valid delivery here
        duplicates = bad = 0
        for number, line in lines:
            expected = outcome(line)
            here = raw.get((name, number)), quarantine.get((name, number))
            assert here.count(None) >= 1, (name, number)  # never both a raw row and a quarantine row
            if isinstance(expected, Row):
                first_line, first = first_of.setdefault(expected[KEY], (number, expected[PAYLOAD]))
                earlier = landed_before.get(expected[KEY])
                # first delivery wins: judged against the landed row, else against the first delivery here
                reference = earlier if earlier is not None else first
                conflict = expected[PAYLOAD] != reference
                bad += conflict
            else:
                bad += 1
            if here[1] is not None:  # quarantined: as delivered, with the reason the line has on its own
                reason, text = here[1]
                assert text == stored_raw_text(line), (name, number)
                if reason == "conflicting_duplicate":
                    assert isinstance(expected, Row), (name, number, expected)
                    assert conflict, (name, number)  # a failed batch keeps all its evidence too
                else:
                    assert isinstance(expected, Rejection) and expected.reason == reason, (name, number, reason)
            elif here[0] is not None:  # landed: the line's own key and payload, the key's first delivery
                assert state == "landed" and isinstance(expected, Row)
                assert here[0] == (expected[KEY], expected[PAYLOAD]) and earlier is None
                assert first_line == number
            elif state == "landed":  # neither: an exact duplicate of the row that stays
                assert isinstance(expected, Row), (name, number, expected)
                assert not conflict and (earlier is not None or first_line != number), (name, number)
                duplicates += 1
            else:  # a failed batch lands nothing; its bad records stay as evidence
                assert isinstance(expected, Row) and not conflict, (name, number)
        quarantined = sum(1 for file, _ in quarantine if file == name)
        if state == "landed":
            assert rows_landed == sum(1 for file, _ in raw if file == name)
            assert (rows_quarantined, rows_duplicate) == (quarantined, duplicates)
            assert rows_landed + rows_quarantined + rows_duplicate == rows_in
            assert quarantined == bad and (not rows_in or bad / rows_in <= CONTRACT.max_quarantine_share)
        else:
            assert state == "failed"
            assert quarantined == bad and bad / rows_in > CONTRACT.max_quarantine_share


def describe(snap: dict[str, list[tuple]]) -> None:
    """What the example exercised (pytest --hypothesis-show-statistics)."""
    event(f"batches failed: {sum(b[2] == 'failed' for b in snap['batches'])}")
    for reason in sorted({q[3] for q in snap["quarantine"]}):
        event(f"quarantined: {reason}")
    if any("already landed" in q[4] for q in snap["quarantine"]):
        event("a conflict with a landed row")


def land_twice_and_check(settings, files: dict[str, bytes]) -> None:
    with open_run(settings, "land") as ctx:
        outcomes = land(ctx)
    assert {o.status for o in outcomes} <= {"landed", "rejected"}
    snaps = {engine: snapshot(settings, engine) for engine in settings.engines}
    for snap in snaps.values():
        check_one_outcome_per_line(files, snap)
    assert snaps["postgres"] == snaps["duckdb"]
    describe(snaps["duckdb"])
    with open_run(settings, "land") as ctx:  # a rerun: nothing new, nothing lost, no crash
        again = land(ctx)
    assert {o.status for o in again} <= {"unchanged", "previously_rejected"}
    assert {engine: snapshot(settings, engine) for engine in settings.engines} == snaps


def _event(event_id: str, app_version: str, spelling: str = "2026-01-01T00:00:00Z") -> bytes:
    return (f'{{"event_id":"{event_id}","user_id":7,"event_ts":"{spelling}","event_type":"purchase",'
            f'"value":1.5,"app_version":"{app_version}","properties":{{"p":[1,{{"q":"\u00e9"}}]}}}}').encode()


FILLER = [_event(f"f{i}", "v") for i in range(60)]
# The paths a random example reaches only now and then: a key landed by an earlier batch delivered again with
# another payload (conflict), then again as a copy of that conflicting line (a conflict too: it is judged against
# the landed row), then with the landed payload spelt differently (a duplicate, not a conflict with line 1).
CONFLICTS = {
    "00-a.jsonl": _event("k", "first") + b"\n",
    "01-b.jsonl": b"\n".join([_event("k", "second")] + FILLER[:30] + [_event("k", "second")] + FILLER[30:]
                             + [b"  " + _event("k", "first", "2026-01-01 01:00:00+01:00")]) + b"\n",
}


@DB
@given(files=landing_files())
@example(files=CONFLICTS)
def test_hostile_files_land_on_both_engines_with_exactly_one_outcome_per_line(fresh_pg_dsn, files):
    reset_postgres(fresh_pg_dsn)
    with tempfile.TemporaryDirectory(prefix="evident-prop-") as root:
        settings = settings_for(Path(root), fresh_pg_dsn)
        settings.landing_dir.mkdir(parents=True)
        for name, data in files.items():
            (source_dir(settings) / name).write_bytes(data)
        land_twice_and_check(settings, files)


@settings(max_examples=CLI_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(files=landing_files(max_files=2), rejected_too=st.booleans())
def test_evident_land_exits_0_or_1_only_over_the_threshold(fresh_pg_dsn, files, rejected_too):
    reset_postgres(fresh_pg_dsn)
    if rejected_too:  # a file certain to exceed the threshold, next to the generated ones
        files = {**files, "zz-bad.jsonl": b"\n".join([b'{"event_id":"z","user_id":1}'] * 3 + [b"\xff"])}
    with tempfile.TemporaryDirectory(prefix="evident-cli-") as root:
        settings = settings_for(Path(root), fresh_pg_dsn)
        settings.landing_dir.mkdir(parents=True)
        for name, data in files.items():
            (source_dir(settings) / name).write_bytes(data)
        result = run_cli(settings, "land")
        output = result.stdout + result.stderr
        assert "Traceback" not in output and "internal error" not in output.lower(), output
        snaps = {engine: snapshot(settings, engine) for engine in settings.engines}
        failed = {b[1] for b in snaps["duckdb"]["batches"] if b[2] == "failed"}
        assert result.returncode == (1 if failed else 0), output
        assert ("quarantine_threshold" in output) == bool(failed)
        assert failed >= ({"zz-bad.jsonl"} if rejected_too else set())
        for snap in snaps.values():
            check_one_outcome_per_line(files, snap)
        assert snaps["postgres"] == snaps["duckdb"]
        again = run_cli(settings, "land")
        assert again.returncode == 0, again.stdout + again.stderr
