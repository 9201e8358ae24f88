"""Any mart: a dbt model an analytics engineer adds, with a few lines of meta and a suite from `evident suite init`,
is published, gated and reconciled on both engines — in a copy of the project, with no Python changed.

The new model (orders per user, over the reference source `orders`) is nothing Evident's code knows: its name,
grain, partition and measures come from dbt's manifest only.
"""
from __future__ import annotations

import filecmp
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
import pytest

from evident.samples.orders import current_versions, generate_orders_sample, parse_timestamp, valid_rows
from tests.helpers import PROJECT_PARTS, REPO, env_for, make_project, project_settings, query

MODEL_SQL = """\
{{ config(materialized='table') }}

with

orders as (

    select * from {{ ref('stg_orders') }}

),

final as (

    select
        cast(user_id as bigint) as user_id,
        cast(min(order_date) as date) as first_order_date,
        cast(count(*) as bigint) as orders,
        cast(sum(amount) as decimal(38, 2)) as amount

    from orders
    group by user_id

)

select * from final
"""
MODEL_YML = """\
version: 2

models:
  - name: fct_user_orders
    description: "One row per user with orders: current orders, their amounts, the first order date."
    config:
      contract: {enforced: true}
      meta:
        evident:
          publish: true
          key: [user_id]
          partition_by: first_order_date
          measures: [orders, amount]
    columns:
      - name: user_id
        data_type: bigint
        constraints: [{type: not_null}]
      - name: first_order_date
        data_type: date
        constraints: [{type: not_null}]
      - name: orders
        data_type: bigint
        constraints: [{type: not_null}]
      - name: amount
        data_type: decimal(38,2)
        constraints: [{type: not_null}]
"""
ADDED = {"dbt_project/models/marts/fct_user_orders.sql", "dbt_project/models/marts/fct_user_orders.yml",
         "expectations/gx/expectations/fct_user_orders.json"}


def run(settings, *args: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "evident.cli", *args], env=env_for(settings), capture_output=True,
                          text=True, timeout=600, cwd=settings.project.root)


def expected(landing: Path) -> list[tuple]:
    """fct_user_orders computed in Python from the sample's valid rows (each order's current version)."""
    users: dict[int, list] = {}
    for row in current_versions(valid_rows(landing)).values():
        acc = users.setdefault(int(row["user_id"]), [date.max, 0, Decimal(0)])
        acc[0] = min(acc[0], parse_timestamp(row["placed_at"]).date())
        acc[1] += 1
        acc[2] += Decimal(row["amount"])
    return sorted((u, d, n, a.quantize(Decimal("0.01"))) for u, (d, n, a) in users.items())


def published(settings, engine: str) -> list[tuple]:
    return [(int(u), d, int(n), Decimal(a)) for u, d, n, a in query(
        settings, engine, "select user_id, first_order_date, orders, amount from published.fct_user_orders "
                          "order by user_id")]


def differing_files(root: Path) -> set[str]:
    """Files of the project copy that are not byte-identical to the repository's (added or changed)."""
    out = set()
    for part in PROJECT_PARTS:
        for path in (root / part).rglob("*"):
            if path.is_file() and not {"target", "uncommitted", "logs"} & set(path.relative_to(root).parts):
                original = REPO / path.relative_to(root)
                if not original.is_file() or not filecmp.cmp(path, original, shallow=False):
                    out.add(path.relative_to(root).as_posix())
    return out


@pytest.mark.postgres
def test_a_new_published_model_is_published_gated_and_reconciled_on_both_engines(tmp_path, fresh_pg_dsn):
    root = make_project(tmp_path / "project")
    settings = project_settings(root, fresh_pg_dsn)
    (root / "dbt_project/models/marts/fct_user_orders.sql").write_text(MODEL_SQL)
    (root / "dbt_project/models/marts/fct_user_orders.yml").write_text(MODEL_YML)
    generate_orders_sample(settings.landing_dir, orders=300, days=3, seed=11)

    # no suite yet: the gate stops, naming the model and the command
    assert run(settings, "land").returncode == 0
    assert run(settings, "build").returncode == 0
    missing = run(settings, "gate")
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert "published model fct_user_orders: no suite fct_user_orders — create it with " \
           "`evident suite init fct_user_orders`" in missing.stderr

    init = run(settings, "suite", "init", "fct_user_orders")
    assert init.returncode == 0, init.stderr
    suite = json.loads((root / "expectations/gx/expectations/fct_user_orders.json").read_text())
    assert [(e["type"], e["kwargs"]) for e in suite["expectations"]] == [
        ("expect_column_values_to_be_unique", {"column": "user_id"}),
        *[("expect_column_values_to_not_be_null", {"column": c})
          for c in ("user_id", "first_order_date", "orders", "amount")]]
    assert differing_files(root) == ADDED  # a model, its YAML and its suite: no Python, nothing else

    first = run(settings, "run")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "published.fct_user_orders" in first.stdout
    want = expected(settings.landing_dir)
    assert want and all(published(settings, e) == want for e in ("duckdb", "postgres"))

    # a planted difference in Postgres is reported by key
    victim = want[len(want) // 2][0]
    with psycopg.connect(fresh_pg_dsn, autocommit=True) as con:
        con.execute("update published.fct_user_orders set amount = amount + 1 where user_id = %s", [victim])
    mismatch = run(settings, "reconcile")
    assert mismatch.returncode == 1, mismatch.stdout + mismatch.stderr
    report = mismatch.stdout + mismatch.stderr  # the failed report is the error message
    rows = [line for line in report.splitlines() if " different " in line]
    assert len(rows) == 1 and "published.fct_user_orders" in rows[0], report
    assert f" {victim} " in rows[0] and "amount: duckdb=" in rows[0], report
    with psycopg.connect(fresh_pg_dsn, autocommit=True) as con:
        con.execute("update published.fct_user_orders set amount = amount - 1 where user_id = %s", [victim])

    # a tampered row in analytics fails the model's gate and published.* stays exactly as it was
    before = {e: published(settings, e) for e in ("duckdb", "postgres")}
    con = duckdb.connect(str(settings.duckdb_path))
    try:
        catalog = con.execute("select current_database()").fetchone()[0]
        con.execute(f'insert into "{catalog}".analytics.fct_user_orders select user_id, first_order_date, '
                    f'orders + 1, amount from "{catalog}".analytics.fct_user_orders where user_id = {int(victim)}')
    finally:
        con.close()
    gate = run(settings, "gate")
    assert gate.returncode == 1, gate.stdout + gate.stderr
    failing = [line for line in (gate.stdout + gate.stderr).splitlines() if "fct_user_orders" in line
               and "expect_column_values_to_be_unique" in line]
    assert failing and "user_id" in failing[0], gate.stdout + gate.stderr
    refused = run(settings, "publish")
    assert refused.returncode == 1 and "gate has not passed" in refused.stderr
    assert {e: published(settings, e) for e in ("duckdb", "postgres")} == before

    # and the whole run with everything matching reconciles
    fixed = run(settings, "run", "--full-refresh")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "0 mismatched; all hashed" in fixed.stdout  # a full refresh verifies every partition
    assert all(published(settings, e) == want for e in ("duckdb", "postgres"))

    # `publish` removed: no longer published; its table stays as it was, and status says it is not declared
    (root / "dbt_project/models/marts/fct_user_orders.yml").write_text(MODEL_YML.replace("publish: true",
                                                                                           "publish: false"))
    again = run(settings, "run")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "published.fct_user_orders" not in again.stdout and "published.fct_orders_daily" in again.stdout
    assert all(published(settings, e) == want for e in ("duckdb", "postgres"))
    status = run(settings, "status", "--json")
    report = json.loads(status.stdout)
    engines = report["engines"] if isinstance(report, dict) else report  # (status's JSON is being reshaped)
    assert {e["engine"]: e["published_not_declared"] for e in engines} == {
        "duckdb": ["fct_user_orders"], "postgres": ["fct_user_orders"]}, status.stdout
    text = run(settings, "status")
    assert "published.fct_user_orders: no longer declared" in text.stdout, text.stdout
