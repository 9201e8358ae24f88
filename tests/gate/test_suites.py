"""Baseline suites from the contracts and the dbt contracts (`evident suite init`), and what the gate targets."""
from __future__ import annotations

from evident.gate.suites import model_baseline, raw_baseline
from evident.land.contracts import load_contract
from tests.helpers import published_marts


def test_the_raw_baseline_is_the_contract_key_required_fields_lengths_enums_and_bounds():
    expectations = [(e["type"], e["kwargs"]) for e in raw_baseline(load_contract("orders", 1))]
    assert expectations == [
        ("expect_column_values_to_be_unique", {"column": "idempotency_key"}),
        ("expect_column_values_to_not_be_null", {"column": "idempotency_key"}),
        ("expect_column_value_lengths_to_equal", {"column": "idempotency_key", "value": 64}),
        *[("expect_column_values_to_not_be_null", {"column": c})
          for c in ("order_id", "user_id", "status", "amount", "currency", "placed_at", "updated_at")],
        ("expect_column_value_lengths_to_be_between", {"column": "order_id", "min_value": 1, "max_value": 64}),
        ("expect_column_values_to_be_between", {"column": "user_id", "min_value": 1}),
        ("expect_column_values_to_be_in_set", {"column": "status", "value_set": [
            "cancelled", "delivered", "paid", "placed", "refunded", "shipped"]}),
        ("expect_column_values_to_be_between", {"column": "amount", "min_value": 0, "max_value": 10**12,
                                                "strict_max": True}),
        ("expect_column_values_to_be_between", {"column": "land_seq", "min_value": 1}),
        ("expect_column_values_to_be_between", {"column": "source_line", "min_value": 1}),
    ]
    app_events = {(e["type"], e["kwargs"]["column"]): e["kwargs"] for e in raw_baseline(load_contract("app_events", 1))}
    assert app_events[("expect_column_values_to_be_between", "event_ts")] == {
        "column": "event_ts", "min_value": "2000-01-01T00:00:00", "max_value": "2100-01-01T00:00:00",
        "strict_max": True}


def test_the_model_baseline_is_the_grain_not_null_columns_and_accepted_values():
    metrics = next(m for m in published_marts() if m.name == "fct_daily_metrics")
    assert [(e["type"], e["kwargs"]) for e in model_baseline(metrics)] == [
        ("expect_compound_columns_to_be_unique", {"column_list": ["metric_date", "metric_name"]}),
        *[("expect_column_values_to_not_be_null", {"column": c})
          for c in ("metric_date", "metric_name", "metric_value")],
        ("expect_column_values_to_be_in_set", {"column": "metric_name", "value_set": [
            "active_users", "events", "signups", "purchases", "revenue", "sessions", "converting_sessions",
            "session_conversion_rate"]}),
    ]
