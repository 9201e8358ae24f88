"""Reconciliation: prove the DuckDB fast path agrees with authoritative Postgres (see compare.py for how)."""
from evident.reconcile.compare import reconcile, skipped_report
from evident.reconcile.pinpoint import LEAF_ROWS
from evident.reconcile.report import MAX_KEYS, ReconcileReport
from evident.reconcile.specs import resolve_tables, table_specs
from evident.reconcile.step import ReconciliationFailed, reconcile_step, run_reconcile, store_report
from evident.reconcile.suite import SUITE_NAME, load_suite_json, suite_definition, validate_report

__all__ = ["LEAF_ROWS", "MAX_KEYS", "SUITE_NAME", "ReconcileReport", "ReconciliationFailed",
           "load_suite_json", "reconcile", "reconcile_step", "resolve_tables", "run_reconcile", "skipped_report",
           "store_report", "suite_definition", "table_specs", "validate_report"]
