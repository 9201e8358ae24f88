"""The reconcile step inside a run: compare, store the report in every engine's control plane, validate it,
and move published batches to `reconciled`."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from evident import faults
from evident.control.batches import advance, batches_in
from evident.engines import Engine
from evident.errors import ReconciliationFailed
from evident.reconcile.compare import reconcile, skipped_report, split_engines
from evident.reconcile.report import ReconcileReport
from evident.reconcile.specs import table_specs
from evident.reconcile.suite import SUITE_FILE, validate_report
from evident.retry import with_retry

STORED_COLUMNS = ("run_id", "table_name", "partition", "duckdb_rows", "postgres_rows", "status", "differing_keys",
                  "threshold", "max_measure_delta", "within_threshold", "checked_at")


def store_report(engines: Sequence[Engine], report: ReconcileReport) -> None:
    """Write the report rows to evident.reconciliations in every engine (a rerun of the run id replaces them)."""
    rows = [tuple(str(r[c]) if c in ("threshold", "max_measure_delta") else r[c] for c in STORED_COLUMNS)
            for r in report.rows()]
    for engine in engines:
        with engine.transaction():
            engine.execute("delete from evident.reconciliations where run_id = %s", [report.run_id])
            placeholders = "(" + ", ".join(["%s"] * len(STORED_COLUMNS)) + ")"
            for start in range(0, len(rows), 200):
                chunk = rows[start:start + 200]
                engine.execute(f"insert into evident.reconciliations ({', '.join(STORED_COLUMNS)}) values "
                               + ", ".join([placeholders] * len(chunk)), [v for r in chunk for v in r])




def mark_reconciled(engines: Sequence[Engine], report: ReconcileReport, all_tables: set[str]) -> dict[str, int]:
    """Move published batches to `reconciled` when every partition they touched matched in every table.

    Only a full check counts: all tables compared, and each of the batch's event dates inside the window.
    """
    moved: dict[str, int] = {}
    if report.status == "skipped" or set(report.tables) != all_tables:
        return moved
    bad_dates = {p.partition for p in report.partitions if not p.acceptable}
    if "*" in bad_dates:
        return moved
    for engine in engines:
        ok = []
        for batch_id in batches_in(engine, "published"):
            row = engine.fetchone("select event_dates from evident.batches where batch_id = %s", [batch_id])
            dates = [d for d in ((row[0] or "").split(",") if row else []) if d]
            inside = all((report.date_from is None or date.fromisoformat(d) >= report.date_from)
                         and (report.date_to is None or date.fromisoformat(d) <= report.date_to) for d in dates)
            if inside and not (set(dates) & bad_dates):
                ok.append(batch_id)
        moved[engine.name] = advance(engine, ok, "published", "reconciled", report.run_id) if ok else 0
        faults.point(f"reconcile.{engine.name}.after_mark")
    return moved


def run_reconcile(ctx, *, tables: Sequence[str] | None = None, date_from=None, date_to=None, full: bool = False,
                  validate: bool = True, raise_on_failure: bool = True) -> ReconcileReport:
    """The `evident reconcile` step inside a run (pipeline.RunContext): compare, store, validate, advance batches.
    `full`: hash every partition, not only those written to since they were last hashed.

    Without Postgres the report is `skipped` (stored in DuckDB) and nothing fails. A failed suite raises
    ReconciliationFailed (exit 1), whose message is the rendered report.
    """
    faults.point("reconcile.before")
    duck, pg = split_engines(ctx.engines)
    if pg is None or duck is None:
        report = skipped_report(ctx.run_id, "Postgres is not configured (EVIDENT_POSTGRES_DSN unset): there is no "
                                            "second engine to reconcile DuckDB against")
    else:
        report = with_retry(lambda: reconcile(ctx.engines, ctx.run_id, tables=tables, date_from=date_from,
                                              date_to=date_to, project=ctx.settings.project, full=full),
                            what="reconciling DuckDB with Postgres")
        if validate:
            validate_report(report, ctx.settings.project.expectations_dir / SUITE_FILE)
    with_retry(lambda: store_report(ctx.engines, report), what="storing the reconciliation report")
    faults.point("reconcile.after_store")
    all_tables = set(table_specs(ctx.settings.project))
    moved = mark_reconciled(ctx.engines, report, all_tables) if report.success else {}
    ctx.detail["reconcile"] = {**report.summary(), "batches_reconciled": moved}
    if not report.success:
        ctx.status = "failed"
        if raise_on_failure:
            raise ReconciliationFailed(report)
    return report


def reconcile_step(ctx, *, tables: Sequence[str] | None = None, date_from=None, date_to=None,
                   full: bool = False) -> list[str]:
    """`evident run`'s last step (evident.runner): run_reconcile, summarised as lines for the run summary.

    Skipped (and says why) without Postgres; a mismatch outside the declared thresholds raises
    ReconciliationFailed (exit 1) carrying the rendered report.
    """
    report = run_reconcile(ctx, tables=tables, date_from=date_from, date_to=date_to, full=full)
    if report.status == "skipped":
        return [f"reconcile: skipped — {report.reason}"]
    moved = ctx.detail.get("reconcile", {}).get("batches_reconciled") or {}
    lines = report.render().splitlines()
    lines[0] = lines[0].replace(f"reconciliation {report.run_id}", "reconcile", 1)
    if moved:
        lines.append("  batches now reconciled: " + ", ".join(f"{e} {n}" for e, n in sorted(moved.items())))
    return [line for line in lines if line.strip()]
