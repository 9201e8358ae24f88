"""The bounded fault-injection run of `make test`: `evident run` killed at every named fault point and at
random moments, on DuckDB alone and with Postgres; `make chaos N=200` runs the long version."""
from __future__ import annotations

import psycopg
import pytest

from tests.chaos import FAULT_POINTS, chaos, summary_table

# Without Postgres reconciliation is skipped before any batch is marked: no after_mark point is reached.
DUCKDB_POINTS = [p for p in FAULT_POINTS if "postgres" not in p and not p.endswith("after_mark")]


@pytest.mark.timeout(2400)
def test_kills_at_every_fault_point_on_duckdb_lose_nothing_and_duplicate_nothing(tmp_path):
    outcomes = chaos(len(DUCKDB_POINTS) + 4, lambda: None, seed=3, workdir=tmp_path, points=DUCKDB_POINTS,
                     random_every=4)
    print(summary_table(outcomes))
    assert sum(o.killed for o in outcomes) >= len(DUCKDB_POINTS)
    assert all(o.ok for o in outcomes), summary_table(outcomes)


@pytest.mark.timeout(2400)
def test_kills_on_both_engines_lose_nothing_and_the_engines_agree(tmp_path, postgres_dsn):
    counter = iter(range(100))

    def new_database() -> str:
        name = f"chaos_{tmp_path.name[-20:].lower().replace('-', '_')}_{next(counter)}"
        with psycopg.connect(postgres_dsn, autocommit=True) as con:
            con.execute(f'drop database if exists "{name}" with (force)')
            con.execute(f'create database "{name}"')
        return psycopg.conninfo.make_conninfo(postgres_dsn, dbname=name)

    points = [p for p in FAULT_POINTS if "postgres" in p or p.startswith("reconcile.")]
    outcomes = chaos(len(points), new_database, seed=4, workdir=tmp_path, points=points, random_every=0)
    print(summary_table(outcomes))
    assert sum(o.killed for o in outcomes) == len(points), summary_table(outcomes)
    assert all(o.ok for o in outcomes), summary_table(outcomes)
