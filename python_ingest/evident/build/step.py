"""`evident build`: dbt build (in-process) on each configured engine; landed batches move to `built`.

What a build processes comes from the data (land_seq high-water marks inside the models), not the clock, so
rebuilding after a crash is safe: the same rows give the same marts.

dbt's unit tests check the models' SQL on fixed inputs (no warehouse data), so they run when that code
changed: on a full refresh, and on the first build of each version of the dbt project (its files, the dbt and
adapter versions, the engine's version); an incremental build of code that passed them here before skips them.
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass

from evident import faults
from evident.build.dbt import UNIT_TESTS, DbtOutcome, code_fingerprint, default_target_dir, run_dbt_build
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
    unit_tests: bool  # whether they ran (else: the same code passed them before)

    @property
    def unit_tests_status(self) -> str:
        return "ran" if self.unit_tests else "skipped"

    @property
    def unit_tests_note(self) -> str:
        """What a summary line adds about the unit tests ("" when they ran)."""
        return "" if self.unit_tests else " (unit tests skipped: unchanged code passed them before)"


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
                                      "batches_built": r.batches_built,
                                      "unit_tests": r.unit_tests_status}
                          for r in results}
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
    project = ctx.settings.project
    code = with_retry(lambda: code_fingerprint(project, str(engine.fetchvalue("select version()"))),
                      what=f"{engine.name}: reading the engine's version")
    unit_tests = full_refresh or not with_retry(lambda: _unit_tests_passed(engine, code),
                                                what=f"{engine.name}: reading earlier builds")
    faults.point("build.before_dbt")
    engine.release()  # dbt opens the database in this process its own way
    # A build is safe to repeat (incremental models replace what they recompute), so a transient fault
    # dbt reports — Postgres restarting mid-build — is retried like any other.
    outcome = with_retry(lambda: _dbt_build(ctx, engine, full_refresh, since, unit_tests),
                         what=f"{engine.name}: dbt build")
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
    tested = code if unit_tests and outcome.success else None
    with_retry(lambda: _record_build(engine, ctx.run_id, full_refresh, outcome, landed,
                                     str(artifacts.relative_to(project.root)), tested),
               what=f"{engine.name}: recording the build")
    log.debug("%s", outcome.summary())
    return BuildResult(engine.name, outcome, moved, str(artifacts), unit_tests)


def _unit_tests_passed(engine: Engine, code: str) -> bool:
    return bool(engine.fetchvalue("select count(*) from evident.builds where engine = %s and success "
                                  "and unit_tested_code = %s", [engine.name, code]))


def _dbt_build(ctx: RunContext, engine: Engine, full_refresh: bool, since: int, unit_tests: bool) -> DbtOutcome:
    outcome = run_dbt_build(engine.name, duckdb_path=ctx.settings.duckdb_path, pg_dsn=ctx.settings.postgres_dsn,
                            full_refresh=full_refresh, check_since_land_seq=since, project=ctx.settings.project,
                            exclude=None if unit_tests else UNIT_TESTS)
    transient = [f for f in outcome.failures if f.status != "fail" and engine.is_transient_message(f.message)]
    if transient:
        raise TransientToolError(f"dbt: {transient[0].message}")
    return outcome


def _record_build(engine: Engine, run_id: str, full_refresh: bool, outcome: DbtOutcome, landed: list[str],
                  artifacts: str, unit_tested_code: str | None) -> None:
    with engine.transaction():
        engine.execute(
            "insert into evident.builds (run_id, engine, full_refresh, success, elapsed_s, batch_ids, failures, "
            "artifacts_dir, built_at, unit_tested_code) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [run_id, engine.name, full_refresh, outcome.success, round(outcome.elapsed, 3),
             ",".join(landed), json.dumps([str(f) for f in outcome.failures]), artifacts, utcnow(),
             unit_tested_code])
