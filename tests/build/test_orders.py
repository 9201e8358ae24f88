"""The orders pipeline: versions of an order arriving out of order and in later deliveries land exactly once on
both engines, and stg_orders holds each order's current version — equal to an independent computation of it."""
from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from evident.samples.orders import current_versions, generate_orders_sample, parse_timestamp, valid_rows
from tests.helpers import query, run_cli, settings_for

STG_COLUMNS = "order_id, user_id, order_status, amount, currency, placed_at, order_date, updated_at, is_gift"


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("orders")
    result = generate_orders_sample(out, orders=400, days=5, seed=3, defect_rate=0.01)
    assert result.late_versions and result.out_of_order_versions and result.duplicate_deliveries
    return out


def reference(sample: Path) -> list[tuple]:
    """stg_orders computed in Python from the sample's valid rows (first delivery wins, latest version)."""
    rows = []
    for order_id, row in sorted(current_versions(valid_rows(sample)).items()):
        placed = parse_timestamp(row["placed_at"]).replace(tzinfo=None)
        gift = row.get("is_gift")
        rows.append((order_id, int(row["user_id"]), row["status"], Decimal(row["amount"]).quantize(Decimal("0.01")),
                     row["currency"], placed, placed.date(), parse_timestamp(row["updated_at"]).replace(tzinfo=None),
                     None if gift is None else gift == "true"))
    return rows


@pytest.mark.postgres
def test_orders_land_exactly_once_and_stg_orders_is_each_orders_latest_version(sample, tmp_path, fresh_pg_dsn):
    settings = settings_for(tmp_path, fresh_pg_dsn)
    files = sorted((sample / "orders").rglob("*.csv"))
    # Two deliveries: the first days, then the rest (whose late versions supersede landed ones).
    for batch in (files[: len(files) // 2], files[len(files) // 2:]):
        for path in batch:
            target = settings.landing_dir / path.relative_to(sample)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
        landed = run_cli(settings, "land")
        assert landed.returncode == 0, landed.stderr
    again = run_cli(settings, "land")
    assert again.returncode == 0 and "landed" not in again.stdout.split("batches:")[-1].split(";")[0], again.stdout

    versions = {(r["order_id"], parse_timestamp(r["updated_at"])) for r in valid_rows(sample)}
    for engine in settings.engines:
        assert query(settings, engine, "select count(*), count(distinct idempotency_key) from raw.orders") == \
            [(len(versions), len(versions))], engine

    built = run_cli(settings, "build")
    assert built.returncode == 0, built.stderr + built.stdout
    expected = reference(sample)
    for engine in settings.engines:
        assert query(settings, engine, f"select {STG_COLUMNS} from analytics.stg_orders order by order_id") \
            == expected, engine
