"""Any source: a contract written for a made-up source, in a copy of the project, lands with no Python change.

Sensor readings exercise the field types app_events does not use (a pattern, a decimal with scale 3, a boolean,
a date as the partition, an object), on both engines: the raw table has the declared types, every reason code
is quarantined at its line, a re-land is a no-op, a compatible new version adds a column (old rows null) and an
incompatible one exits 2 naming the change.
"""
from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers import make_project, project_settings, query, run_cli

CONTRACT_V1 = """\
# A made-up source: one reading per sensor and instant.
name: sensor_readings
version: 1
format: jsonl
landing: "sensors/**"
idempotency_key: [sensor_id, read_at]
partition_by: read_day
max_quarantine_share: 0.5
fields:
  sensor_id:   {type: string, required: true, pattern: "S-[0-9]{4}"}
  read_at:     {type: timestamp, required: true}
  read_day:    {type: date, required: true}
  level:       {type: integer, required: true, minimum: 0, maximum: 1000}
  temperature: {type: decimal, scale: 3, minimum: -100, maximum: 100}
  ok:          {type: boolean, required: true}
  meta:        {type: object}
"""
# v2: a new optional field and a relaxed bound — compatible.
CONTRACT_V2 = CONTRACT_V1.replace("version: 1", "version: 2").replace("maximum: 1000}", "maximum: 2000}") + \
    "  battery:     {type: decimal, scale: 1, minimum: 0, maximum: 100}\n"
# v3: a field changes type — incompatible.
CONTRACT_V3 = CONTRACT_V2.replace("version: 2", "version: 3").replace(
    "{type: integer, required: true, minimum: 0, maximum: 2000}", "{type: string, required: true}")

EXPECTED_TYPES = {"idempotency_key": "varchar", "sensor_id": "varchar", "read_at": "timestamp", "read_day": "date",
                  "level": "bigint", "temperature": "decimal(6,3)", "ok": "boolean", "meta": "varchar",
                  "payload_sha256": "varchar"}


def reading(sensor: str = "S-0001", at: str = "2026-05-01T10:00:00Z", **fields) -> bytes:
    record = {"sensor_id": sensor, "read_at": at, "read_day": at[:10], "level": 7, "temperature": 21.125, "ok": True,
              "meta": {"site": "roof", "tags": ["a", "b"]}}
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


# (line, reason code) of every JSONL reason, in a file of readings; the rest of the lines are good.
BAD = [
    (b'{"sensor_id":"S-0002","read_at":"' + b"x" * (1 << 20) + b'"}', "oversized_record"),
    (b'{"sensor_id":"S-\xff","read_at":"2026-05-01T10:00:00Z"}', "invalid_utf8"),
    (b'{"sensor_id":"S-0003",', "malformed_json"),
    (b'{"meta":' + b'{"n":' * 70 + b"1" + b"}" * 71, "invalid_value"),  # strict JSON nested deeper than 64
    (b'["S-0004"]', "wrong_type"),
    (reading("S-0005", colour="red"), "unknown_field"),
    (reading("S-0006", ok=...), "missing_field"),
    (reading("S-0007", level="7"), "wrong_type"),
    (reading("x-0008"), "invalid_value"),  # pattern
    (reading("S-0009", temperature=1.0001), "invalid_value"),  # more than 3 decimals
    (reading("S-0010", read_day="2026-02-30"), "invalid_value"),  # calendar
    (reading("S-0011", level=1001), "invalid_value"),  # above the maximum
    (reading("S-0001", "2026-05-02T10:01:00Z", temperature=5), "conflicting_duplicate"),  # line 1: same key
]


def write_file(settings, name: str, lines: list[bytes]) -> str:
    path = settings.landing_dir / "sensors" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return f"sensors/{name}"


@pytest.fixture(params=["duckdb", "postgres"])
def project(request, tmp_path: Path):
    root = make_project(tmp_path / "project")
    (root / "python_ingest" / "contracts" / "sensor_readings.v1.yml").write_text(CONTRACT_V1, encoding="utf-8")
    dsn = request.getfixturevalue("fresh_pg_dsn") if request.param == "postgres" else None
    settings = project_settings(root, dsn)
    settings.landing_dir.mkdir(parents=True)
    return root, settings


def column_types(settings, engine: str) -> dict[str, str]:
    from evident.pipeline.context import connect_engines

    [found] = [e for e in connect_engines(settings, "test", read_only=True) if e.name == engine]
    try:
        return found.table_columns("raw", "sensor_readings")
    finally:
        found.close()


def test_a_made_up_source_lands_with_its_declared_types_reason_codes_and_evolution(project):
    root, settings = project
    good = [reading(f"S-{i:04d}", f"2026-05-0{1 + i % 3}T10:{i % 60:02d}:00Z", temperature=i / 8) for i in range(1, 31)]
    first = write_file(settings, "2026-05-01.jsonl", good[:10] + [line for line, _ in BAD] + good[10:])
    landed = run_cli(settings, "land")
    assert landed.returncode == 0, landed.stderr

    for engine in settings.engines:
        types = column_types(settings, engine)
        assert {name: types[name] for name in EXPECTED_TYPES} == EXPECTED_TYPES, engine
        quarantined = query(settings, engine, "select line_number, reason_code from raw.sensor_readings_quarantine "
                                              f"where source_file = '{first}' order by line_number")
        assert quarantined == [(11 + i, reason) for i, (_, reason) in enumerate(BAD)], engine
        rows = query(settings, engine, "select sensor_id, read_at, read_day, level, temperature, ok, meta "
                                       "from raw.sensor_readings where sensor_id = 'S-0004'")
        assert rows == [("S-0004", datetime(2026, 5, 2, 10, 4), date(2026, 5, 2), 7, Decimal("0.500"), True,
                         '{"site":"roof","tags":["a","b"]}')], engine
        assert query(settings, engine, "select count(*), count(distinct source) from evident.batches "
                                       "where source = 'sensor_readings'") == [(1, 1)]
        assert query(settings, engine, "select event_dates from evident.batches") == \
            [("2026-05-01,2026-05-02,2026-05-03",)]  # the partitions of a date field
    assert query(settings, "duckdb", "select count(*) from raw.sensor_readings") == [(30,)]

    again = run_cli(settings, "land")
    assert again.returncode == 0, again.stderr
    for engine in settings.engines:
        assert query(settings, engine, "select count(*) from raw.sensor_readings") == [(30,)]
        assert query(settings, engine, "select count(*) from evident.batches") == [(1,)]

    # A compatible new version: its first batch adds the new column; the rows landed before keep it null.
    contracts = root / "python_ingest" / "contracts"
    (contracts / "sensor_readings.v2.yml").write_text(CONTRACT_V2, encoding="utf-8")
    write_file(settings, "2026-05-04.jsonl", [reading("S-0100", "2026-05-04T09:00:00Z", level=1500, battery=87.5)])
    evolved = run_cli(settings, "land")
    assert evolved.returncode == 0, evolved.stderr
    for engine in settings.engines:
        assert column_types(settings, engine)["battery"] == "decimal(4,1)"
        assert query(settings, engine, "select sensor_id, level, battery from raw.sensor_readings "
                                       "where battery is not null or sensor_id = 'S-0001' order by sensor_id") == \
            [("S-0001", 7, None), ("S-0100", 1500, Decimal("87.5"))]
        assert query(settings, engine, "select distinct contract_id like 'sensor_readings@2#%' "
                                       "from raw.sensor_readings where sensor_id = 'S-0100'") == [(True,)]

    # An incompatible one: refused before anything lands, naming the change.
    (contracts / "sensor_readings.v3.yml").write_text(CONTRACT_V3, encoding="utf-8")
    write_file(settings, "2026-05-05.jsonl", [reading("S-0200", "2026-05-05T09:00:00Z", level="high")])
    refused = run_cli(settings, "land")
    assert refused.returncode == 2, refused.stderr
    assert "sensor_readings v3" in refused.stderr and "field level: type integer → string" in refused.stderr
    assert "new source name" in refused.stderr and "Traceback" not in refused.stderr
    for engine in settings.engines:
        assert query(settings, engine, "select count(*) from raw.sensor_readings where sensor_id = 'S-0200'") == [(0,)]


def test_a_file_no_contract_routes_is_reported_and_left_alone(project):
    _, settings = project
    stray = settings.landing_dir / "misc" / "notes.jsonl"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b'{"hello":"world"}\n')
    result = run_cli(settings, "land")
    assert result.returncode == 0, result.stderr
    assert "match no contract" in result.stderr and "misc/notes.jsonl" in result.stderr
    status = run_cli(settings, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert all(s["files_not_routed"] == ["misc/notes.jsonl"] for s in json.loads(status.stdout))
    assert query(settings, "duckdb", "select count(*) from evident.batches") == [(0,)]


def test_a_file_two_contracts_route_is_a_configuration_error_naming_both(project):
    root, settings = project
    overlapping = CONTRACT_V1.replace("name: sensor_readings", "name: sensor_copies").replace(
        'landing: "sensors/**"', 'landing: "sensors/*.jsonl"')
    (root / "python_ingest" / "contracts" / "sensor_copies.v1.yml").write_text(overlapping, encoding="utf-8")
    write_file(settings, "a.jsonl", [reading()])
    result = run_cli(settings, "land")
    assert result.returncode == 2, result.stderr
    assert "sensors/a.jsonl" in result.stderr and "sensor_readings" in result.stderr \
        and "sensor_copies" in result.stderr
