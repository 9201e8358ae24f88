"""The gate: Great Expectations suites over the audit area (analytics.*) and raw, on every configured engine.

    report = run_gate(ctx.engines, ctx.run_id, batch_ids)
    print(report.render())          # failures as a table: expectation, column, observed vs expected, values
    if not report.success: ...      # publication must not happen

The GX project is expectations/gx (file mode, in version control): one suite per raw source (`raw_<source>`)
and per published model (`<model>`), plus any suite named like another dbt model (stg_app_events). Which
sources and models exist comes from the contracts and dbt's manifest (evident.gate.suites); one without a
suite is exit 2 naming it and `evident suite init`. The validation definitions (one per engine and suite) and
checkpoints (`gate_duckdb`, `gate_postgres`, without actions) are derived for each run in memory
(evident.gate.context), never hand-maintained. The Data Docs site
(expectations/gx/uncommitted/data_docs/local_site/, git-ignored like the stored validation results) is rebuilt
when a gate fails, so the report can point at it, and by `evident docs`; not on every passing gate, because GX
re-renders every stored result each time (that made each gate slower than the last). Stored validation results
are pruned to the newest KEEP_VALIDATION_RUNS runs per suite; evident.gate_results keeps the whole history.
The suites are the same JSON for both engines; the engines differ only in their datasource
(great_expectations.yml, `fluent_datasources`):

- `postgres`: GX's Postgres SQL datasource, `connection_string: ${EVIDENT_GX_POSTGRES_URL}`;
- `duckdb`: `evident_duckdb` (evident.engines.gx_duckdb: one persisted connection, default DuckDB configuration),
  `connection_string: duckdb:///${EVIDENT_GX_DUCKDB_PATH}`.

Both variables are set in this process only for the duration of the gate, from the engines' own settings; the
Postgres password therefore never reaches a file GX writes (great_expectations.yml keeps the placeholder), and
every message we keep passes through evident.secrets.redact.

Metrics are computed in SQL (GX pushes each metric bundle down as an aggregate query; SUMMARY result format
fetches at most a few LIMITed failing values), so memory does not grow with the marts. GX's engines are closed
and disposed before returning, so the DuckDB file is free for the next writer.

A metric that errors (bad SQL, missing table) does not raise in GX: the expectation just fails with an empty
result and the error in `exception_info`. Such failures are reported with their message. A validation that
cannot run at all (missing table, unreachable server) is reported as a failed check named `(validation)`.

great_expectations is imported lazily, inside run_gate (it costs seconds).
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from evident.config import temporary_environment
from evident.engines import Engine, classify
from evident.errors import ConfigError
from evident.gate.checks import SAMPLE_SIZE, checks_from_suite_result, dumps, error_check
from evident.gate.context import gate_context
from evident.gate.data_docs import prune_validation_results, render_data_docs
from evident.gate.report import CheckResult, GateReport, clip
from evident.gate.store import store_results
from evident.gate.suites import SuiteTarget, gate_targets
from evident.project import Project, find_project
from evident.retry import with_retry
from evident.secrets import redact

log = logging.getLogger(__name__)


def run_gate(
    engines: Sequence[Engine],
    run_id: str,
    batch_ids: Sequence[str] | Mapping[str, Sequence[str]],
    *,
    project_dir: str | os.PathLike[str],
    store: bool = True,
    targets: Sequence[SuiteTarget] | None = None,
    evident_project: Project | None = None,
) -> GateReport:
    """Validate every raw source and published model (and other models with a suite) on every engine.

    `project_dir` is the GX project's folder (expectations/); `targets` default to evident.gate.suites'
    gate_targets of `evident_project` (default: the current project) with that folder's suites.
    Never raises for a data failure (the report says what failed); raises ConfigError when the GX project is
    missing, a source or published model has no suite, or an engine has no datasource. Results are stored in
    evident.gate_results on every engine (each engine's control plane gets the whole report) unless store=False.
    """
    project = Path(project_dir)
    if not (project / "gx" / "great_expectations.yml").is_file():
        raise ConfigError(f"no Great Expectations project at {project}/gx (great_expectations.yml missing)")
    if targets is None:
        targets = gate_targets(evident_project or find_project(), project / "gx" / "expectations")
    per_engine = ({e.name: list(batch_ids.get(e.name, ())) for e in engines} if isinstance(batch_ids, Mapping)
                  else {e.name: list(batch_ids) for e in engines})
    report = GateReport(run_id=run_id, batch_ids=per_engine)
    env = _gx_environment(engines)
    for engine in engines:  # a server that is down is a transient fault (retried, exit 75), not a failed gate
        with_retry(lambda: engine.fetchone("select 1"), what=f"{engine.name}: reaching the engine for the gate")

    started = time.monotonic()
    with temporary_environment(env), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations as gx  # noqa: F401  (lazy: seconds)

        from evident.engines import gx_duckdb  # noqa: F401  registers the evident_duckdb datasource type

        report.import_s = time.monotonic() - started
        context, setup_failures = gate_context(project / "gx", [e.name for e in engines], targets)
        try:
            for engine in engines:
                t0 = time.monotonic()
                report.checks.extend(error_check(engine.name, suite, message)
                                     for suite, message in setup_failures.get(engine.name, []))
                if len(setup_failures.get(engine.name, [])) < len(targets):
                    report.checks.extend(_validate_engine(context, engine.name, run_id))
                report.elapsed_s[engine.name] = time.monotonic() - t0
            prune_validation_results(project)
            if not report.success:
                report.data_docs_index = render_data_docs(context, project)
        finally:
            _close_gx(context)
    # GX returns failing rows of query expectations only with result format COMPLETE, which would also
    # fetch every unexpected value of the column expectations; fetch a few rows of those queries here.
    by_name = {e.name: e for e in engines}
    report.checks = [_with_query_sample(by_name[c.engine], c) if c.query and not c.success and not c.error
                     else c for c in report.checks]
    if store:
        store_results(engines, report)
    log.debug(redact(report.summary()))
    return report


def _validate_engine(context: Any, engine: str, run_id: str) -> list[CheckResult]:
    """Run checkpoint gate_<engine>; if it cannot run as a whole, run its validation definitions one by one."""
    try:
        checkpoint = context.checkpoints.get(f"gate_{engine}")
    except Exception as exc:
        return [error_check(engine, "(all)", f"checkpoint gate_{engine} not found: {exc}")]
    try:
        from great_expectations.core.run_identifier import RunIdentifier

        result = checkpoint.run(run_id=RunIdentifier(run_name=run_id))
    except Exception as exc:  # e.g. a table is missing: the checkpoint stops at that batch
        log.warning(redact(f"{engine}: checkpoint gate_{engine} did not run as a whole ({exc}); "
                           "validating suite by suite"))
        return _validate_one_by_one(checkpoint, engine)
    checks: list[CheckResult] = []
    for validation in result.run_results.values():
        checks.extend(checks_from_suite_result(engine, validation))
    return checks


def _validate_one_by_one(checkpoint: Any, engine: str) -> list[CheckResult]:
    checks: list[CheckResult] = []
    result_format = checkpoint.result_format
    for definition in checkpoint.validation_definitions:
        try:
            validation = definition.run(result_format=result_format)
        except Exception as exc:
            checks.append(error_check(engine, definition.suite.name, f"{type(exc).__name__}: {exc}"))
            continue
        checks.extend(checks_from_suite_result(engine, validation))
    return checks


def _with_query_sample(engine: Engine, check: CheckResult) -> CheckResult:
    """Fill failing_sample of a failed unexpected-rows expectation with its first rows (as column: value)."""
    try:
        names, rows = engine.fetch_with_names(
            f"select * from ({check.query}) as unexpected_rows limit {SAMPLE_SIZE}")
        sample = dumps([dict(zip(names, row)) for row in rows])
    except Exception as exc:
        if classify(exc) is None:
            raise  # not a database error: a bug
        sample = f"(could not fetch the failing rows: {clip(redact(str(exc)), 300)})"
    return replace(check, failing_sample=sample)


def _close_gx(context: Any) -> None:
    """Close every execution engine and dispose every SQLAlchemy engine GX opened (frees the DuckDB file)."""
    try:
        datasources = list(context.data_sources.all().values())
    except Exception:  # pragma: no cover - defensive
        return
    for datasource in datasources:
        with contextlib.suppress(Exception):
            execution_engine = getattr(datasource, "_execution_engine", None)
            if execution_engine is not None:
                execution_engine.close()
                with contextlib.suppress(Exception):
                    execution_engine.engine.dispose()
                datasource._execution_engine = None
        with contextlib.suppress(Exception):
            engine = getattr(datasource, "_engine", None)
            if engine is not None:
                engine.dispose()
                datasource._engine = None


# ------------------------------------------------------------------------------------------ connections


def _gx_environment(engines: Sequence[Engine]) -> dict[str, str]:
    env: dict[str, str] = {"GX_ANALYTICS_ENABLED": "false"}
    for engine in engines:
        env.update(engine.gx_environment())
    return env
