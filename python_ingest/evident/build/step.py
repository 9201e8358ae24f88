"""`evident build`: dbt build (in-process) on each configured engine; landed batches move to `built`.

What a build processes comes from the data (land_seq high-water marks inside the models), not the clock, so
rebuilding after a crash is safe: the same rows give the same marts.
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass

from evident import faults
from evident.build.dbt import DbtOutcome, default_target_dir, run_dbt_build
from evident.control.batches import advance, batches_in, utcnow
from evident.engines import Engine
from evident.errors import BuildFailed, ConfigError, TransientToolError
from evident.pipeline.context import RunContext
from evident.retention import prune_oldest_dirs
from evident.retry import with_retry

log = logging.getLogger(__name__)
ARTIFACTS = ("run_results.json", "manifest.json")
KEEP_RUN_ARTIFACTS = 50  # run folders kept under target/runs (~1.4 MB each); evident.builds keeps every build




@dataclass
class BuildResult:
    engine: str
    outcome: DbtOutcome
    batches_built: int
    artifacts_dir: str


def select_engines(ctx: RunContext, target: str) -> list[Engine]:
    if target == "all":
        return ctx.engines
    chosen = [e for e in ctx.engines if e.name == target]
    if not chosen:
        raise ConfigError(f"target {target} is not configured (engines: {', '.join(e.name for e in ctx.engines)})")
    return chosen


def build(ctx: RunContext, *, full_refresh: bool = False, target: str = "all") -> list[BuildResult]:
    """Build every selected engine; raise BuildFailed naming the failing nodes if any engine failed."""
    results = [_build_engine(ctx, engine, full_refresh) for engine in select_engines(ctx, target)]
    ctx.detail["build"] = {r.engine: {"success": r.outcome.success, "elapsed_s": round(r.outcome.elapsed, 2),
                                      "batches_built": r.batches_built} for r in results}
    failed = [r for r in results if not r.outcome.success]
    if failed:
        raise BuildFailed("\n".join(r.outcome.summary() for r in failed))
    return results


def _high_water_mark(engine: Engine) -> int:
    if not engine.table_exists("analytics", "fct_sessions"):  # first build: check everything
        return 0
    return int(engine.fetchvalue("select coalesce(max(last_land_seq), 0) from analytics.fct_sessions"))


def _build_engine(ctx: RunContext, engine: Engine, full_refresh: bool) -> BuildResult:
    landed = with_retry(lambda: batches_in(engine, "landed"), what=f"{engine.name}: listing landed batches")
    # The heavy data tests only need to look at what this build changes: rows above the marts' current
    # high-water mark (0 = everything, as on a full refresh or a first build).
    since = 0 if full_refresh else with_retry(lambda: _high_water_mark(engine),
                                              what=f"{engine.name}: reading the marts' high-water mark")
    faults.point("build.before_dbt")
    engine.release()  # dbt opens the database in this process its own way
    project = ctx.settings.project
    # A build is safe to repeat (incremental models replace what they recompute), so a transient fault
    # dbt reports — Postgres restarting mid-build — is retried like any other.
    outcome = with_retry(lambda: _dbt_build(ctx, engine, full_refresh, since), what=f"{engine.name}: dbt build")
    artifacts = project.target_dir / "runs" / ctx.run_id / engine.name
    artifacts.mkdir(parents=True, exist_ok=True)
    work = default_target_dir(engine.name, ctx.settings.duckdb_path, project)
    for name in ARTIFACTS:
        source = work / name
        if source.exists():
            shutil.copy2(source, artifacts / name)
    prune_oldest_dirs(artifacts.parent.parent, KEEP_RUN_ARTIFACTS)
    faults.point(f"build.{engine.name}.after_dbt")
    moved = (with_retry(lambda: advance(engine, landed, "landed", "built", ctx.run_id),
                        what=f"{engine.name}: marking batches built") if outcome.success else 0)
    with_retry(lambda: _record_build(engine, ctx.run_id, full_refresh, outcome, landed,
                                     str(artifacts.relative_to(project.root))),
               what=f"{engine.name}: recording the build")
    log.debug("%s", outcome.summary())
    return BuildResult(engine.name, outcome, moved, str(artifacts))


def _dbt_build(ctx: RunContext, engine: Engine, full_refresh: bool, since: int) -> DbtOutcome:
    outcome = run_dbt_build(engine.name, duckdb_path=ctx.settings.duckdb_path, pg_dsn=ctx.settings.postgres_dsn,
                            full_refresh=full_refresh, check_since_land_seq=since, project=ctx.settings.project)
    transient = [f for f in outcome.failures if f.status != "fail" and engine.is_transient_message(f.message)]
    if transient:
        raise TransientToolError(f"dbt: {transient[0].message}")
    return outcome


def _record_build(engine: Engine, run_id: str, full_refresh: bool, outcome: DbtOutcome, landed: list[str],
                  artifacts: str) -> None:
    with engine.transaction():
        engine.execute(
            "insert into evident.builds (run_id, engine, full_refresh, success, elapsed_s, batch_ids, failures, "
            "artifacts_dir, built_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [run_id, engine.name, full_refresh, outcome.success, round(outcome.elapsed, 3),
             ",".join(landed), json.dumps([str(f) for f in outcome.failures]), artifacts, utcnow()])
