"""A run of the pipeline: lock, engines, run record — and the steps that run inside it."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Iterator

from .config import Settings
from .contracts import Contract, load_contract
from .engines import DuckDBEngine, Engine, PostgresEngine
from .errors import DataRejected
from .landing import LandOutcome, land_files
from .lock import RunLock
from .records import source_files
from .retry import with_retry
from .revision import code_revision
from .runs import finish_run, new_run_id, start_run

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    settings: Settings
    run_id: str
    command: str
    code_revision: str
    engines: list[Engine]
    detail: dict = field(default_factory=dict)
    status: str = "succeeded"


def connect_engines(settings: Settings, application_name: str) -> list[Engine]:
    """Postgres (authoritative) first when configured, then DuckDB; each created with its schema."""
    engines: list[Engine] = []
    try:
        if settings.postgres_dsn:
            engines.append(with_retry(lambda: PostgresEngine(settings.postgres_dsn, application_name),
                                      what="connecting to Postgres"))
        engines.append(with_retry(lambda: DuckDBEngine(settings.duckdb_path),
                                  what=f"opening DuckDB file {settings.duckdb_path}"))
        for engine in engines:
            with_retry(engine.ensure_schema, what=f"{engine.name}: creating Evident's schemas")
    except BaseException:
        for engine in engines:
            engine.close()
        raise
    return engines


@contextlib.contextmanager
def open_run(settings: Settings, command: str, wait: bool = False) -> Iterator[RunContext]:
    run_id = new_run_id()
    revision = code_revision()
    with RunLock(settings.duckdb_path, settings.postgres_dsn, run_id, command, wait):
        engines = connect_engines(settings, f"evident {command} {run_id}")
        ctx = RunContext(settings, run_id, command, revision, engines)
        try:
            for engine in engines:
                with_retry(lambda: start_run(engine, run_id, command, revision), what=f"{engine.name}: recording the run")
            try:
                yield ctx
            except BaseException as exc:
                ctx.status = "failed"
                ctx.detail.setdefault("error", str(exc))
                raise
            finally:
                for engine in engines:
                    with contextlib.suppress(Exception):
                        finish_run(engine, run_id, ctx.status, ctx.detail)
        finally:
            for engine in engines:
                engine.close()


def land(ctx: RunContext, contract: Contract | None = None) -> list[LandOutcome]:
    """Land every file under the landing dir, in lexicographic path order, on every engine."""
    contract = contract or load_contract()
    outcomes = land_files(ctx.engines, ctx.settings.landing_dir, list(source_files(ctx.settings.landing_dir)),
                          contract, ctx.run_id, ctx.code_revision, workers=ctx.settings.land_workers)
    ctx.detail["land"] = summarize(outcomes)
    if any(o.status == "rejected" for o in outcomes):
        ctx.status = "failed"
    return outcomes


def summarize(outcomes: list[LandOutcome]) -> dict:
    by_engine: dict[str, dict] = {}
    for o in outcomes:
        s = by_engine.setdefault(o.engine, {"batches": {}, "rows_in": 0, "rows_landed": 0,
                                            "rows_quarantined": 0, "rows_duplicate": 0})
        s["batches"][o.status] = s["batches"].get(o.status, 0) + 1
        for name in ("rows_in", "rows_landed", "rows_quarantined", "rows_duplicate"):
            s[name] += getattr(o, name)
    return by_engine


class GateFailed(DataRejected):
    reason = "gate_failed"


def gate(ctx: RunContext):
    """Validate the audit area on every engine; built batches become gated only when every suite passes."""
    from . import faults
    from .batches import advance, batches_in
    from .gate import run_gate

    faults.point("gate.before")
    built = {e.name: batches_in(e, "built") for e in ctx.engines}
    for engine in ctx.engines:
        if isinstance(engine, DuckDBEngine):
            engine.release()  # GX opens the DuckDB file in this process through its own connection
    report = run_gate(ctx.engines, ctx.run_id, built)
    ctx.detail["gate"] = {"success": report.success, "failures": len(report.failures)}
    if not report.success:
        raise GateFailed(f"the gate failed; published.* is unchanged\n{report.render()}")
    for engine in ctx.engines:
        advance(engine, built[engine.name], "built", "gated", ctx.run_id)
    return report


def passing_gates(ctx: RunContext) -> dict[str, str]:
    """Engine → run id of a passing gate that audited the current build (no successful build since)."""
    from .gate import ensure_gate_results_table, gate_passed

    passing = {}
    for engine in ctx.engines:
        ensure_gate_results_table(engine)
        row = engine.fetchone(
            "select g.run_id from evident.gate_results g group by g.run_id "
            "having min(g.validated_at) >= coalesce((select max(b.built_at) from evident.builds b "
            "where b.success and b.engine = %s), min(g.validated_at)) "
            "order by max(g.validated_at) desc limit 1", [engine.name])
        if row and gate_passed(engine, row[0]):
            passing[engine.name] = row[0]
    return passing
