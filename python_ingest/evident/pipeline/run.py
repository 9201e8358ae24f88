"""`evident run`: land → build → gate → publish → reconcile, with progress and a summary at the end."""
from __future__ import annotations

import time
from collections.abc import Callable

from evident import faults
from evident.config import Settings
from evident.errors import EXIT_DATA, EXIT_OK, EvidentError
from evident.gate.step import gate
from evident.land.step import land, summarize, unrouted_note
from evident.pipeline.context import RunContext, open_run


def run_pipeline(settings: Settings, *, full_refresh: bool = False, wait: bool | float | None = False,
                 echo: Callable[[str], None] = print) -> int:
    """Run every step; a failing step stops the run (published.* stays as it was). Returns the exit code."""
    from evident.build.step import build
    from evident.publish.step import publish

    timings: dict[str, float] = {}
    lines: list[str] = []
    code = EXIT_OK

    def step(name: str, action: Callable[[], object]):
        echo(f"▶ {name} …")
        started = time.monotonic()
        try:
            return action()
        finally:
            timings[name] = time.monotonic() - started

    with open_run(settings, "run", wait) as ctx:
        try:
            outcomes = step("land", lambda: land(ctx))
            for engine, s in summarize(outcomes).items():
                lines.append(f"land [{engine}]: batches {_counts(s['batches'])}; rows in {s['rows_in']}, landed "
                             f"{s['rows_landed']}, quarantined {s['rows_quarantined']}, "
                             f"duplicate {s['rows_duplicate']}")
            for o in outcomes:
                if o.status == "rejected":
                    lines.append(f"REJECTED [{o.engine}] {o.message}")
                    code = EXIT_DATA
            note = unrouted_note(ctx.detail.get("unrouted", []))
            if note:
                lines.append(note)
            results = step("build", lambda: build(ctx, full_refresh=full_refresh))
            lines += [f"build [{r.engine}]: {r.outcome.nodes_run} dbt nodes OK, {r.batches_built} batch(es) built"
                      for r in results]
            report = step("gate", lambda: gate(ctx))
            lines.append(f"gate: {report.summary()}")
            publications = step("publish", lambda: publish(ctx, _gate_ids(ctx, report)))
            lines += [f"publish [{p.engine}]: published.{p.table} {p.rows} rows (+{p.rows_inserted} "
                      f"−{p.rows_deleted})" for p in publications]
            faults.point("run.after_publish")
            lines += _reconcile(ctx, step)
        except EvidentError as exc:
            ctx.status = "failed"
            lines.append(f"FAILED ({exc.reason}): {exc}")
            code = exc.exit_code
        finally:
            echo("")
            echo(f"run {ctx.run_id} — " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
            for line in lines:
                echo(f"  {line}")
    return code


def _gate_ids(ctx: RunContext, report) -> dict[str, str]:
    return {e.name: ctx.run_id for e in ctx.engines} if report.success else {}


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def _reconcile(ctx: RunContext, step) -> list[str]:
    """Reconciliation runs when both engines are configured (and says why not otherwise)."""
    from evident.reconcile.step import reconcile_step

    return step("reconcile", lambda: reconcile_step(ctx))
