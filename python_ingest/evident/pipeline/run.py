"""`evident run`: land → build → gate → publish → reconcile, with progress and a summary at the end."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from evident import faults, logs
from evident.config import Settings
from evident.errors import EXIT_DATA, EXIT_INTERNAL, EXIT_OK, DataRejected, EvidentError
from evident.gate.step import gate
from evident.land.step import land, summarize, unrouted_note
from evident.pipeline.context import RunContext, open_run


def run_pipeline(settings: Settings, *, full_refresh: bool = False, wait: bool | float | None = False,
                 echo: Callable[..., None] = logs.echo,
                 on_summary: Callable[[dict[str, Any]], None] | None = None, fail_on_drift: bool = False) -> int:
    """Run every step; a failing step stops the run (published.* stays as it was). Returns the exit code.

    A full refresh audits incremental drift (evident.build.drift): the incremental marts are kept beside the
    full refresh and compared with it per published model before the gate; drift is printed and stored, and
    the full-refresh result is gated and published all the same. With `fail_on_drift` the run then fails
    (exit 1), after publishing.

    `echo` prints progress and the text summary (in json mode: JSON lines with the step, counts and durations,
    one per landed batch, and `run_finished` carrying the summary). `on_summary` gets the summary as a
    document (`run --json`): the same facts and numbers as the text summary, also when the run failed."""
    from evident.build.drift import compare_drift, keep_incremental
    from evident.build.step import build
    from evident.publish.step import publish

    timings: dict[str, float] = {}
    lines: list[str] = []
    code = EXIT_OK
    # The facts behind `lines`, for machines: every number in a line comes from here.
    summary: dict[str, Any] = {"run_id": None, "command": "run", "code_revision": None, "full_refresh": full_refresh,
                               "status": "failed", "exit_code": None, "duration_s": None, "steps_s": timings,
                               "land": {}, "rejected": [], "unrouted": [], "build": [], "gate": None, "publish": [],
                               "drift": None, "reconcile": None, "error": None}
    run_started = time.monotonic()

    def step(name: str, action: Callable[[], Any], record: Callable[[Any], object] = lambda _: None) -> Any:
        """Run one step: `record` puts its facts into the summary (so its step_finished line carries them)."""
        echo(f"▶ {name} …", event="step_started", step=name)
        started = time.monotonic()
        outcome = "failed"
        with logs.step(name), logs.Progress(name):
            try:
                result = action()
                record(result)
                outcome = "succeeded"
                return result
            finally:
                timings[name] = round(time.monotonic() - started, 3)
                if logs.json_mode():
                    echo(f"{name} {outcome} in {timings[name]:.1f}s", event="step_finished", step=name,
                         outcome=outcome, duration_s=timings[name], **_step_facts(name, summary))

    try:
        with open_run(settings, "run", wait) as ctx:
            summary["run_id"], summary["code_revision"] = ctx.run_id, ctx.code_revision
            try:
                outcomes = step("land", lambda: land(ctx), lambda r: summary.update(land=summarize(r)))
                for engine, s in summary["land"].items():
                    lines.append(f"land [{engine}]: batches {_counts(s['batches'])}; rows in {s['rows_in']}, "
                                 f"landed {s['rows_landed']}, quarantined {s['rows_quarantined']}, "
                                 f"duplicate {s['rows_duplicate']}")
                for o in outcomes:
                    if logs.json_mode():
                        echo(f"batch {o.batch_id} {o.status} [{o.engine}] {o.source_file}", event="batch",
                             level="error" if o.status == "rejected" else "info", step="land", **batch_facts(o))
                    if o.status == "rejected":
                        summary["rejected"].append(batch_facts(o))
                        lines.append(f"REJECTED [{o.engine}] {o.message}")
                        code = EXIT_DATA
                summary["unrouted"] = ctx.detail.get("unrouted", [])
                note = unrouted_note(summary["unrouted"])
                if note:
                    lines.append(note)
                kept = step("incremental", lambda: keep_incremental(ctx)) if full_refresh else None
                built = step("build", lambda: build(ctx, full_refresh=full_refresh), lambda results: summary.update(
                    build=[{"engine": r.engine, "nodes_run": r.outcome.nodes_run, "batches_built": r.batches_built,
                            "dbt_s": round(r.outcome.elapsed, 3), "unit_tests": r.unit_tests_status}
                           for r in results]))
                lines += [f"build [{r.engine}]: {r.outcome.nodes_run} dbt nodes OK, {r.batches_built} batch(es) "
                          f"built{r.unit_tests_note}" for r in built]
                drift = (step("drift", lambda: compare_drift(ctx, kept), lambda r: summary.update(drift=r.summary()))
                         if kept is not None else None)
                if drift is not None:
                    lines += drift.render().splitlines()
                report = step("gate", lambda: gate(ctx), lambda r: summary.update(gate=_gate_facts(r)))
                lines.append(f"gate: {report.summary()}")
                step("publish", lambda: publish(ctx, _gate_ids(ctx, report)), lambda publications: summary.update(
                    publish=[{"engine": p.engine, "table": f"published.{p.table}", "rows": p.rows,
                              "rows_inserted": p.rows_inserted, "rows_deleted": p.rows_deleted}
                             for p in publications]))
                lines += [f"publish [{p['engine']}]: {p['table']} {p['rows']} rows (+{p['rows_inserted']} "
                          f"−{p['rows_deleted']})" for p in summary["publish"]]
                faults.point("run.after_publish")
                reconciled = _reconcile(ctx, step, full=full_refresh)
                summary["reconcile"] = {**ctx.detail.get("reconcile", {}), "lines": reconciled}
                lines += reconciled
                if drift is not None and drift.drift and fail_on_drift:
                    raise DataRejected("incremental drift (--fail-on-drift): the incremental marts differed from "
                                       "the full refresh (above, and in evident.drift_reports); published.* now "
                                       "holds the full refresh", reason="incremental_drift")
            except EvidentError as exc:
                ctx.status = "failed"
                lines.append(f"FAILED ({exc.reason}): {exc}")
                summary["error"] = _error_facts(exc)
                code = exc.exit_code
            except BaseException as exc:  # a bug (or an interrupt): main() reports it; the summary says so
                ctx.status = "failed"
                summary["error"] = _error_facts(exc)
                code = summary["error"]["exit_code"]
                lines.append(f"FAILED ({summary['error']['reason']}): {summary['error']['message']}")
                raise
            finally:
                summary["status"] = ctx.status
                summary["exit_code"] = code
                summary["duration_s"] = round(time.monotonic() - run_started, 3)
                text = [f"run {ctx.run_id} — " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()),
                        *(f"  {line}" for line in lines)]
                if logs.json_mode():
                    echo("\n".join(text), event="run_finished", level="error" if code else "info",
                         summary=summary)
                else:
                    echo("")
                    for line in text:
                        echo(line)
    except BaseException as exc:
        if summary["error"] is None:  # the run never started: lock held, no connection, …
            error = summary["error"] = _error_facts(exc)
            summary["exit_code"] = error["exit_code"]
            summary["run_id"] = summary["run_id"] or logs.context().get("run_id")
        raise
    finally:
        summary["duration_s"] = round(time.monotonic() - run_started, 3)
        if on_summary is not None:
            on_summary(summary)
    return code


def _error_facts(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, EvidentError):
        return {"reason": exc.reason, "message": str(exc), "exit_code": exc.exit_code}
    if isinstance(exc, KeyboardInterrupt):
        return {"reason": "interrupted", "message": "interrupted", "exit_code": 130}
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return {"reason": "internal", "message": f"internal error (a bug in Evident): {what}",
            "exit_code": EXIT_INTERNAL}


def batch_facts(o) -> dict[str, Any]:
    return {"batch_id": o.batch_id, "engine": o.engine, "source_file": o.source_file, "status": o.status,
            "rows_in": o.rows_in, "rows_landed": o.rows_landed, "rows_quarantined": o.rows_quarantined,
            "rows_duplicate": o.rows_duplicate, "detail": o.message or None, "reasons": dict(o.reasons)}


def _gate_facts(report) -> dict[str, Any]:
    engines = {}
    for engine in report.engines:
        checks = [c for c in report.checks if c.engine == engine]
        failed = sum(not c.success for c in checks)
        engines[engine] = {"checks": len(checks), "passed": len(checks) - failed, "failed": failed,
                           "validation_s": round(report.elapsed_s.get(engine, 0.0), 3)}
    return {"success": report.success, "engines": engines}


def _step_facts(name: str, summary: dict[str, Any]) -> dict[str, Any]:
    """What a step_finished line carries besides its duration: the step's counts once they are known."""
    facts = {"land": ("land",), "build": ("build",), "drift": ("drift",), "gate": ("gate",), "publish": ("publish",)}
    return {key: summary[key] for key in facts.get(name, ()) if summary.get(key)}


def _gate_ids(ctx: RunContext, report) -> dict[str, str]:
    return {e.name: ctx.run_id for e in ctx.engines} if report.success else {}


def _counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def _reconcile(ctx: RunContext, step, full: bool) -> list[str]:
    """Reconciliation runs when both engines are configured (and says why not otherwise); a full refresh
    verifies every partition, an incremental run those written to since they were last hashed."""
    from evident.reconcile.step import reconcile_step

    return step("reconcile", lambda: reconcile_step(ctx, full=full))
