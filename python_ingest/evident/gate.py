"""The gate: Great Expectations suites over the audit area (analytics.*) and raw, on every configured engine.

    report = run_gate(ctx.engines, ctx.run_id, batch_ids)
    print(report.render())          # failures as a table: expectation, column, observed vs expected, values
    if not report.success: ...      # publication must not happen

The GX project is expectations/gx (file mode, in version control): four suites (raw_app_events,
stg_app_events, fct_sessions, fct_daily_metrics), one validation definition per (engine, suite), one checkpoint
per engine (`gate_duckdb`, `gate_postgres`), without actions. The Data Docs site
(expectations/gx/uncommitted/data_docs/local_site/, git-ignored like the stored validation results) is rebuilt
when a gate fails, so the report can point at it, and by `evident docs`; not on every passing gate, because GX
re-renders every stored result each time (that made each gate slower than the last). Stored validation results
are pruned to the newest KEEP_VALIDATION_RUNS runs per suite; evident.gate_results keeps the whole history.
The suites are the same JSON for both engines; the engines differ only in their datasource:

- `postgres`: GX's Postgres SQL datasource, `connection_string: ${EVIDENT_GX_POSTGRES_URL}`;
- `duckdb`: `evident_duckdb` (evident.gx_duckdb: one persisted connection, default DuckDB configuration),
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
import json
import logging
import os
import re
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from .batches import utcnow
from .engines import DuckDBEngine, Engine, PostgresEngine
from .errors import ConfigError
from .retention import prune_oldest_dirs
from .retry import with_retry
from .dbt_runner import temporary_environment as _environment
from .secrets import redact, register_dsn

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PROJECT_DIR = REPO_ROOT / "expectations"
SUITES = ("raw_app_events", "stg_app_events", "fct_sessions", "fct_daily_metrics")
ENV_DUCKDB_PATH = "EVIDENT_GX_DUCKDB_PATH"
ENV_POSTGRES_URL = "EVIDENT_GX_POSTGRES_URL"
SAMPLE_SIZE = 5  # failing values kept per expectation
KEEP_VALIDATION_RUNS = 20  # GX validation results kept per suite (for Data Docs)
_TEXT_LIMIT = 2000  # characters kept per text column in evident.gate_results

GATE_RESULTS_DDL = """create table if not exists evident.gate_results (
    run_id varchar not null,
    engine varchar not null,
    suite varchar not null,
    expectation_type varchar not null,
    column_name varchar,
    success boolean not null,
    observed_value varchar,
    expected varchar,
    failing_sample varchar,
    batch_ids varchar,
    validated_at timestamp not null
)"""
GATE_RESULT_COLUMNS = ("run_id", "engine", "suite", "expectation_type", "column_name", "success",
                       "observed_value", "expected", "failing_sample", "batch_ids", "validated_at")
# kwargs that say how to validate, not what is expected
_NOT_EXPECTATIONS = {"column", "column_A", "column_B", "column_list", "batch_id", "result_format",
                     "catch_exceptions", "include_config", "meta", "notes", "description", "condition_parser"}


@dataclass(frozen=True)
class CheckResult:
    """One expectation on one engine (or a validation that could not run: expectation_type `(validation)`)."""

    engine: str
    suite: str
    expectation_type: str
    column: str | None
    success: bool
    observed: str
    expected: str
    failing_sample: str
    description: str | None = None
    error: str | None = None  # metric/validation error message, redacted
    query: str | None = None  # unexpected-rows SQL with {batch} replaced by the validated table

    def as_row(self, run_id: str, batch_ids: str, validated_at: datetime) -> tuple:
        clip = (lambda s: None if s is None else s[:_TEXT_LIMIT])
        observed = self.observed if not self.error else f"error: {self.error}"
        return (run_id, self.engine, self.suite, self.expectation_type, self.column, self.success,
                clip(observed), clip(self.expected), clip(self.failing_sample), batch_ids, validated_at)


@dataclass
class GateReport:
    run_id: str
    batch_ids: dict[str, list[str]]  # per engine
    checks: list[CheckResult] = field(default_factory=list)
    elapsed_s: dict[str, float] = field(default_factory=dict)  # per engine, validation only
    import_s: float = 0.0
    data_docs_index: Path | None = None

    @property
    def engines(self) -> list[str]:
        return list(self.batch_ids)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success]

    @property
    def success(self) -> bool:
        return bool(self.checks) and not self.failures and all(
            any(c.engine == e for c in self.checks) for e in self.engines)

    def summary(self) -> str:
        parts = []
        for engine in self.engines:
            checks = [c for c in self.checks if c.engine == engine]
            failed = sum(not c.success for c in checks)
            parts.append(f"{engine}: {len(checks) - failed}/{len(checks)} passed"
                         + (f" ({self.elapsed_s[engine]:.1f} s)" if engine in self.elapsed_s else ""))
        return f"gate {'PASSED' if self.success else 'FAILED'} — " + "; ".join(parts)

    def render(self, max_rows: int = 50) -> str:
        """A readable summary and, when something failed, a table of the failures."""
        lines = [self.summary()]
        if not self.failures:
            return "\n".join(lines)
        header = ("engine", "suite", "expectation", "column", "observed", "expected", "failing values")
        rows = [(c.engine, c.suite, c.expectation_type, c.column or "-",
                 f"error: {c.error}" if c.error else c.observed, c.expected, c.failing_sample or "-")
                for c in self.failures[:max_rows]]
        limits = (8, 17, 46, 24, 70, 60, 70)
        cells = [[_clip(v, limit) for v, limit in zip(row, limits)] for row in [header, *rows]]
        widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
        fmt = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
        lines += ["", fmt(cells[0]), fmt(["-" * w for w in widths]), *(fmt(r) for r in cells[1:])]
        if len(self.failures) > max_rows:
            lines.append(f"… and {len(self.failures) - max_rows} more failure(s) (see evident.gate_results)")
        errors = dict.fromkeys((c.engine, c.suite, c.error) for c in self.failures if c.error)
        if errors:
            lines += ["", "Errors (an expectation that could not be computed fails with its error):"]
            lines += [f"  {engine} / {suite}: {_clip(error, 500)}" for engine, suite, error in errors]
        if self.data_docs_index:
            lines.append(f"Data Docs: {self.data_docs_index}")
        return "\n".join(lines)


def _clip(value: str, limit: int) -> str:
    value = " ".join(str(value).split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


# ------------------------------------------------------------------------------------------ running


def run_gate(
    engines: Sequence[Engine],
    run_id: str,
    batch_ids: Sequence[str] | Mapping[str, Sequence[str]],
    *,
    project_dir: str | os.PathLike[str] = DEFAULT_PROJECT_DIR,
    store: bool = True,
) -> GateReport:
    """Validate raw.app_events and analytics.* on every engine with the committed checkpoints.

    Never raises for a data failure (the report says what failed); raises ConfigError when the GX project is
    missing or an engine is of an unknown kind. Results are stored in evident.gate_results on every engine
    (each engine's control plane gets the whole report) unless store=False.
    """
    project = Path(project_dir)
    if not (project / "gx" / "great_expectations.yml").is_file():
        raise ConfigError(f"no Great Expectations project at {project}/gx (great_expectations.yml missing)")
    per_engine = ({e.name: list(batch_ids.get(e.name, ())) for e in engines} if isinstance(batch_ids, Mapping)
                  else {e.name: list(batch_ids) for e in engines})
    report = GateReport(run_id=run_id, batch_ids=per_engine)
    env = _gx_environment(engines)
    for engine in engines:  # a server that is down is a transient fault (retried, exit 75), not a failed gate
        with_retry(lambda: engine.fetchone("select 1"), what=f"{engine.name}: reaching the engine for the gate")

    started = time.monotonic()
    with _environment(env), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations as gx  # noqa: F401  (lazy: seconds)

        from . import gx_duckdb  # noqa: F401  registers the evident_duckdb datasource type

        report.import_s = time.monotonic() - started
        context = gx.get_context(mode="file", project_root_dir=str(project))
        try:
            for engine in engines:
                t0 = time.monotonic()
                report.checks.extend(_validate_engine(context, engine.name, run_id))
                report.elapsed_s[engine.name] = time.monotonic() - t0
            prune_validation_results(project)
            if not report.success:
                report.data_docs_index = _build_data_docs(context, project)
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


def build_data_docs(project_dir: str | os.PathLike[str] = DEFAULT_PROJECT_DIR) -> Path:
    """Rebuild the Data Docs site from the suites and the stored validation results (validates nothing).

    For `make docs`; returns the index page. Works on a fresh clone too (then the site shows the suites only).
    """
    project = Path(project_dir)
    if not (project / "gx" / "great_expectations.yml").is_file():
        raise ConfigError(f"no Great Expectations project at {project}/gx (great_expectations.yml missing)")
    with _environment({"GX_ANALYTICS_ENABLED": "false"}), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations as gx

        from . import gx_duckdb  # noqa: F401  registers the evident_duckdb datasource type

        context = gx.get_context(mode="file", project_root_dir=str(project))
        prune_validation_results(project)
        index = _build_data_docs(context, project)
    if index is None:
        raise ConfigError(f"GX built no Data Docs index under {project}/gx/uncommitted/data_docs")
    return index


def _build_data_docs(context: Any, project: Path) -> Path | None:
    """Render the local Data Docs site; a rendering problem is logged, never a failed gate."""
    try:
        context.build_data_docs()
    except Exception as exc:
        log.warning(redact(f"could not build the Data Docs site: {exc}"))
    index = project / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    return index if index.is_file() else None


def prune_validation_results(project: Path, keep: int = KEEP_VALIDATION_RUNS) -> int:
    """Delete all but the newest `keep` stored runs of each suite (GX's store: validations/<suite>/<run>/…).

    Returns how many run folders were removed. Only folders GX created under uncommitted/ are touched.
    """
    root = project / "gx" / "uncommitted" / "validations"
    suites = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    return sum(prune_oldest_dirs(suite, keep) for suite in suites)


def _validate_engine(context: Any, engine: str, run_id: str) -> list[CheckResult]:
    """Run checkpoint gate_<engine>; if it cannot run as a whole, run its validation definitions one by one."""
    try:
        checkpoint = context.checkpoints.get(f"gate_{engine}")
    except Exception as exc:
        return [_error_check(engine, "(all)", f"checkpoint gate_{engine} not found: {exc}")]
    try:
        from great_expectations.core.run_identifier import RunIdentifier

        result = checkpoint.run(run_id=RunIdentifier(run_name=run_id))
    except Exception as exc:  # e.g. a table is missing: the checkpoint stops at that batch
        log.warning(redact(f"{engine}: checkpoint gate_{engine} did not run as a whole ({exc}); "
                           "validating suite by suite"))
        return _validate_one_by_one(checkpoint, engine)
    checks: list[CheckResult] = []
    for validation in result.run_results.values():
        checks.extend(_checks_from_suite_result(engine, validation))
    return checks


def _validate_one_by_one(checkpoint: Any, engine: str) -> list[CheckResult]:
    checks: list[CheckResult] = []
    result_format = checkpoint.result_format
    for definition in checkpoint.validation_definitions:
        try:
            validation = definition.run(result_format=result_format)
        except Exception as exc:
            checks.append(_error_check(engine, definition.suite.name, f"{type(exc).__name__}: {exc}"))
            continue
        checks.extend(_checks_from_suite_result(engine, validation))
    return checks


def _error_check(engine: str, suite: str, message: str) -> CheckResult:
    return CheckResult(engine=engine, suite=suite, expectation_type="(validation)", column=None, success=False,
                       observed="", expected="the suite runs", failing_sample="",
                       error=_clip(redact(message), 1000))


def _checks_from_suite_result(engine: str, validation: Any) -> list[CheckResult]:
    suite = validation.suite_name
    spec = (validation.meta or {}).get("batch_spec") or {}
    table = ".".join(p for p in (spec.get("schema_name"), spec.get("table_name")) if p) or None
    checks = []
    for r in validation.results:
        config = r.expectation_config
        kwargs = dict(config.kwargs)
        column = kwargs.get("column")
        if column is None and "column_A" in kwargs:
            column = f"{kwargs['column_A']}, {kwargs['column_B']}"
        elif column is None and "column_list" in kwargs:
            column = ", ".join(kwargs["column_list"])
        error = None if r.success else _exception_message(r.exception_info)
        result = r.result or {}
        checks.append(CheckResult(
            engine=engine, suite=suite, expectation_type=config.type, column=column, success=bool(r.success),
            observed=_observed(config.type, result), expected=_expected(config.type, kwargs, config.description),
            failing_sample=_failing_sample(result), description=config.description, error=error,
            query=(str(kwargs["unexpected_rows_query"]).replace("{batch}", table)
                   if table and isinstance(kwargs.get("unexpected_rows_query"), str) else None),
        ))
    if not validation.results and not validation.success:
        checks.append(_error_check(engine, suite, "the validation failed without results"))
    return checks


def _with_query_sample(engine: Engine, check: CheckResult) -> CheckResult:
    """Fill failing_sample of a failed unexpected-rows expectation with its first rows (as column: value)."""
    try:
        sql = f"select * from ({check.query}) as unexpected_rows limit {SAMPLE_SIZE}"
        if isinstance(engine, DuckDBEngine):
            cursor = engine.con.execute(engine.sql(sql))
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        else:
            with engine.con.cursor() as cur:
                cur.execute(sql)
                names = [d.name for d in cur.description]
                rows = cur.fetchall()
        sample = _dumps([dict(zip(names, row)) for row in rows])
    except Exception as exc:
        sample = f"(could not fetch the failing rows: {_clip(redact(str(exc)), 300)})"
    return replace(check, failing_sample=sample)


def _exception_message(info: Any) -> str | None:
    """The message(s) of GX's exception_info: either one dict or a dict keyed by metric id."""
    if not info:
        return None
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, Mapping):
            if node.get("raised_exception") and node.get("exception_message"):
                found.append(str(node["exception_message"]))
                return
            for value in node.values():
                visit(value)
        elif hasattr(node, "exception_message"):  # ExceptionInfo objects
            if getattr(node, "raised_exception", True) and node.exception_message:
                found.append(str(node.exception_message))

    visit(info)
    if not found:
        return None
    unique = list(dict.fromkeys(_clean_db_error(m) for m in found))
    return _clip(redact(" | ".join(unique)), 1000)


def _clean_db_error(message: str) -> str:
    """SQLAlchemy's wrapping off a driver error: '(driver.Class) text [SQL: …] (Background on …)' → 'text'."""
    message = " ".join(message.split())
    message = re.sub(r"\s*\[SQL: .*$", "", message)
    message = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", message)
    message = re.sub(r"^\((?:[\w.]+)\)\s*", "", message)
    return message.strip()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    return json.dumps(_jsonable(value), default=str, ensure_ascii=False, separators=(", ", ": "))


def _observed(expectation_type: str, result: Mapping) -> str:
    if not result:
        return ""
    if "unexpected_count" in result and "element_count" in result:
        count, total = result.get("unexpected_count") or 0, result.get("element_count") or 0
        percent = result.get("unexpected_percent")
        text = f"{count} unexpected of {total} rows"
        if count and percent is not None:
            text += f" ({percent:.4g}%)"
        if result.get("missing_count"):
            text += f", {result['missing_count']} null"
        return text
    if "observed_value" in result:
        observed = result["observed_value"]
        if expectation_type == "unexpected_rows_expectation":
            return f"{observed} unexpected row(s)"
        return _dumps(observed)
    return _dumps(result)


_PLAIN_EXPECTATIONS = {
    "expect_column_values_to_be_unique": "unique",
    "expect_compound_columns_to_be_unique": "unique together",
    "expect_column_values_to_not_be_null": "not null",
}


def _expected(expectation_type: str, kwargs: Mapping, description: str | None) -> str:
    if "unexpected_rows_query" in kwargs:
        return "no rows" + (f": {description}" if description else "")
    if expectation_type in _PLAIN_EXPECTATIONS:
        return _PLAIN_EXPECTATIONS[expectation_type]
    parts = []
    for key, value in kwargs.items():
        if key in _NOT_EXPECTATIONS or value is None:
            continue
        if key != "row_condition":
            parts.append(f"{key}={_dumps(value)}")
    if kwargs.get("row_condition"):
        parts.append(f"where {_condition_text(kwargs['row_condition'])}")
    return ", ".join(parts) or "(as named)"


def _condition_text(condition: Any) -> str:
    if isinstance(condition, Mapping) and "column" in condition and "operator" in condition:
        column = condition["column"].get("name") if isinstance(condition["column"], Mapping) else condition["column"]
        return f"{column} {condition['operator']} {_dumps(condition.get('parameter'))}"
    return repr(condition) if not isinstance(condition, str) else condition


def _failing_sample(result: Mapping) -> str:
    if not result:
        return ""
    details = result.get("details") or {}
    rows = details.get("unexpected_rows") if isinstance(details, Mapping) else None
    if rows:
        return _dumps(list(rows)[:SAMPLE_SIZE])
    values = result.get("partial_unexpected_list")
    if values:
        return _dumps(list(values)[:SAMPLE_SIZE])
    counts = result.get("partial_unexpected_counts")
    if counts:
        return _dumps(list(counts)[:SAMPLE_SIZE])
    return ""


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
        if isinstance(engine, DuckDBEngine):
            env[ENV_DUCKDB_PATH] = str(Path(engine.path).resolve())
        elif isinstance(engine, PostgresEngine):
            env[ENV_POSTGRES_URL] = sqlalchemy_url_from_dsn(engine.dsn)
        else:
            raise ConfigError(f"the gate does not know engine {getattr(engine, 'name', engine)!r}")
    return env


def sqlalchemy_url_from_dsn(dsn: str) -> str:
    """A `postgresql+psycopg://` URL from a libpq URL or key=value DSN (the password is kept, for GX only)."""
    from sqlalchemy.engine import URL

    register_dsn(dsn)
    try:
        parts = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None and str(v) != ""}
    except Exception as exc:  # its text may quote the DSN
        raise ConfigError("EVIDENT_POSTGRES_DSN is not a valid libpq URL or key=value DSN") from exc
    host = parts.pop("host", None)
    port = parts.pop("port", None)
    query: dict[str, str] = {}
    if host and ("," in host or host.startswith("/")):  # several hosts or a socket directory: libpq handles it
        query["host"] = host
        host = None
    if port and ("," in port or host is None and "host" in query):
        query["port"] = port
        port = None
    url = URL.create(
        "postgresql+psycopg",
        username=parts.pop("user", None),
        password=parts.pop("password", None),
        host=host,
        port=int(port) if port else None,
        database=parts.pop("dbname", None),
        query={**query, **parts},
    )
    return url.render_as_string(hide_password=False)


# ------------------------------------------------------------------------------------------ control plane


def ensure_gate_results_table(engine: Engine) -> None:
    engine.execute(GATE_RESULTS_DDL)


def store_results(engines: Sequence[Engine], report: GateReport) -> None:
    """Write every check of the report to evident.gate_results on every engine, one transaction each."""
    validated_at = utcnow()
    for engine in engines:
        rows = [c.as_row(report.run_id, ",".join(report.batch_ids.get(c.engine, [])), validated_at)
                for c in report.checks]
        with_retry(lambda: _store(engine, report.run_id, rows), what=f"{engine.name}: storing the gate results")


def _store(engine: Engine, run_id: str, rows: list[tuple]) -> None:
    with engine.transaction():
        ensure_gate_results_table(engine)
        engine.execute("delete from evident.gate_results where run_id = %s", [run_id])
        if not rows:
            return
        placeholders = ", ".join(["%s"] * len(GATE_RESULT_COLUMNS))
        sql = f"insert into evident.gate_results ({', '.join(GATE_RESULT_COLUMNS)}) values ({placeholders})"
        if isinstance(engine, PostgresEngine):
            with engine.con.cursor() as cur:
                cur.executemany(sql, rows)
        elif isinstance(engine, DuckDBEngine):
            engine.con.executemany(engine.sql(sql), rows)
        else:
            for row in rows:
                engine.execute(sql, row)


def gate_passed(engine: Engine, run_id: str) -> bool:
    """Whether evident.gate_results holds a complete, passing gate for run_id on this engine's control plane."""
    try:
        row = engine.fetchone(
            "select count(*), sum(case when success then 0 else 1 end) from evident.gate_results where run_id = %s",
            [run_id])
    except Exception:
        return False
    return bool(row and row[0] and not row[1])
