"""The reconciliation suite: GX validates the report rows (as a small pandas DataFrame)."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

from evident.project import find_project
from evident.reconcile.report import ReconcileReport, Validation

SUITE_NAME = "reconciliation"
SUITE_FILE = Path("gx") / "expectations" / "reconciliation.json"  # under the project's expectations/


def suite_definition() -> dict:
    """The reconciliation suite (also stored, in GX's JSON form, at expectations/SUITE_FILE)."""
    return {
        "name": SUITE_NAME,
        "meta": {"notes": "Validates evident.reconcile report rows: every partition matched, or mismatched only "
                          "by measure values within the table's declared threshold."},
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "table_name"}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "partition"}},
            {"type": "expect_column_values_to_be_in_set",
             "kwargs": {"column": "status", "value_set": ["matched", "mismatched", "skipped"]}},
            # A partition is accepted when it matched or its mismatch is within the declared threshold.
            {"type": "expect_column_values_to_be_in_set",
             "kwargs": {"column": "acceptance", "value_set": ["matched", "within_threshold", "skipped"]}},
            {"type": "expect_column_pair_values_a_to_be_greater_than_b",
             "kwargs": {"column_A": "threshold", "column_B": "max_measure_delta", "or_equal": True}},
        ],
    }


def _report_frame(report: ReconcileReport):
    import pandas as pd

    rows = []
    for r in report.rows():
        acceptance = ("skipped" if r["status"] == "skipped" else "matched" if r["status"] == "matched"
                      else "within_threshold" if r["within_threshold"] else "mismatched")
        rows.append({"table_name": r["table_name"], "partition": r["partition"], "status": r["status"],
                     "acceptance": acceptance, "duckdb_rows": r["duckdb_rows"], "postgres_rows": r["postgres_rows"],
                     "threshold": float(r["threshold"]), "max_measure_delta": float(r["max_measure_delta"])})
    columns = ["table_name", "partition", "status", "acceptance", "duckdb_rows", "postgres_rows", "threshold",
               "max_measure_delta"]
    return pd.DataFrame(rows, columns=columns)


def load_suite_json(path: Path | None = None) -> dict:
    path = path or find_project().expectations_dir / SUITE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else suite_definition()


def validate_report(report: ReconcileReport, suite_path: Path | None = None) -> Validation:
    """Validate the report rows with the GX suite in an ephemeral context; sets and returns report.validation."""
    import logging
    import warnings

    import great_expectations as gx  # lazy: seconds to import
    from great_expectations.core.expectation_suite import ExpectationSuite

    if report.status == "skipped":
        report.validation = Validation(True, [])
        return report.validation
    frame = _report_frame(report)
    if frame.empty:  # nothing to compare in the window: nothing can disagree
        report.validation = Validation(True, [])
        return report.validation
    for name in ("great_expectations", "great_expectations.data_context.types.base"):  # the latter sets INFO
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        context = gx.get_context(mode="ephemeral")
        with contextlib.suppress(Exception):  # no progress bars on stderr
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context.variables.progress_bars = ProgressBarsConfig(globally=False)
        spec = load_suite_json(suite_path)
        suite = context.suites.add(ExpectationSuite(
            name=spec["name"], meta=spec.get("meta") or {},
            expectations=[{k: v for k, v in e.items() if k in ("type", "kwargs", "meta")}
                          for e in spec["expectations"]]))
        source = context.data_sources.add_pandas("reconciliation")
        asset = source.add_dataframe_asset("report")
        batch = asset.add_batch_definition_whole_dataframe("rows").get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format="SUMMARY")
    failures = []
    for r in result.results:
        if r.success:
            continue
        cfg = r.expectation_config
        assert cfg is not None  # a validation result always carries the expectation it checked
        detail = r.result or {}
        sample = detail.get("partial_unexpected_list") or detail.get("partial_unexpected_index_list") or []
        errors = [v.get("exception_message") for v in (r.exception_info or {}).values()
                  if isinstance(v, dict) and v.get("raised_exception")]
        kwargs = {k: v for k, v in cfg.kwargs.items() if k != "batch_id"}
        failures.append(f"{cfg.type}({json.dumps(kwargs, default=str, sort_keys=True)}): "
                        f"{detail.get('unexpected_count', '?')} unexpected"
                        + (f", e.g. {sample[:5]}" if sample else "") + (f"; error: {errors[0]}" if errors else ""))
    report.validation = Validation(bool(result.success), failures)
    return report.validation
