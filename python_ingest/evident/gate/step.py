"""The gate step inside a run: validate the audit area on every engine; built batches become gated only when
every suite passes; and which passing gate audited the current build (publish asks)."""
from __future__ import annotations

from evident import faults
from evident.control.batches import advance, batches_in
from evident.engines import is_transient_message
from evident.errors import GateFailed, TransientToolError
from evident.gate.report import GateReport
from evident.gate.runner import run_gate
from evident.gate.store import gate_passed
from evident.pipeline.context import RunContext
from evident.retry import with_retry


def gate(ctx: RunContext) -> GateReport:
    faults.point("gate.before")
    built = {e.name: with_retry(lambda: batches_in(e, "built"), what=f"{e.name}: listing built batches")
             for e in ctx.engines}
    for engine in ctx.engines:
        engine.release()  # GX opens the database in this process through its own connection
    report = with_retry(lambda: _run_gate(ctx, built), what="running the gate")
    ctx.detail["gate"] = {"success": report.success, "failures": len(report.failures)}
    if not report.success:
        raise GateFailed(f"the gate failed; published.* is unchanged\n{report.render()}")
    for engine in ctx.engines:
        with_retry(lambda: advance(engine, built[engine.name], "built", "gated", ctx.run_id),
                   what=f"{engine.name}: marking batches gated")
    return report


def _run_gate(ctx: RunContext, built: dict[str, list[str]]) -> GateReport:
    report = run_gate(ctx.engines, ctx.run_id, built, project_dir=ctx.settings.project.expectations_dir)
    # An expectation that could not be computed because the server went away says nothing about the data:
    # the gate is run again (and exits 75 if the fault outlasts the retries), never reported as failed.
    transient = [c for c in report.failures if c.error and is_transient_message(c.error)]
    if transient:
        raise TransientToolError(f"the gate on {transient[0].engine}: {transient[0].error}")
    return report


def passing_gates(ctx: RunContext) -> dict[str, str]:
    """Engine → run id of a passing gate that audited the current build (no successful build since)."""
    passing = {}
    for engine in ctx.engines:
        row = engine.fetchone(
            "select g.run_id from evident.gate_results g group by g.run_id "
            "having min(g.validated_at) >= coalesce((select max(b.built_at) from evident.builds b "
            "where b.success and b.engine = %s), min(g.validated_at)) "
            "order by max(g.validated_at) desc limit 1", [engine.name])
        if row and gate_passed(engine, row[0]):
            passing[engine.name] = row[0]
    return passing
