"""Run the dbt project (dbt_project/, profiles/) in-process with dbtRunner, on one target at a time.

    outcome = run_dbt_build("duckdb", duckdb_path="warehouse/evident.duckdb", pg_dsn=None)
    if not outcome.success:
        print(outcome.summary())      # names every failing model/test

Connection settings reach profiles/profiles.yml as environment variables (EVIDENT_DUCKDB_PATH,
EVIDENT_PG_HOST/PORT/USER/PASSWORD/DBNAME), set only for the duration of the call and restored after it. The
password is never logged: dbt does not print profile fields, and every message we return passes through
evident.secrets.redact.

dbtRunner is not safe for concurrent invocations in one process; calls are serialised with a lock.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from evident.errors import ConfigError
from evident.secrets import redact, register_dsn

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT_DIR = REPO_ROOT / "dbt_project"
PROFILES_DIR = REPO_ROOT / "profiles"
TARGETS = ("duckdb", "postgres")

# dbt's own statuses that mean "this node did not do its job" (a node skipped because of one is listed apart)
_FAILED_STATUSES = {"error", "fail", "runtime error"}

_DBT_LOCK = threading.Lock()

_PG_ENV_KEYS = {
    "host": "EVIDENT_PG_HOST",
    "port": "EVIDENT_PG_PORT",
    "user": "EVIDENT_PG_USER",
    "password": "EVIDENT_PG_PASSWORD",
    "dbname": "EVIDENT_PG_DBNAME",
}
# DSN parameters profiles.yml does not name reach libpq (under dbt-postgres) through its own variables.
_LIBPQ_ENV_KEYS = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "options": "PGOPTIONS",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}


@dataclass(frozen=True)
class DbtFailure:
    node: str  # unique_id, e.g. model.evident.fct_sessions or test.evident.unique_fct_sessions_session_id.…
    name: str  # the node's short name
    status: str  # error | fail | skipped | runtime error | dbt (the invocation itself failed)
    message: str

    def __str__(self) -> str:
        return f"{self.status}: {self.name} ({self.node}): {self.message}"


@dataclass
class DbtOutcome:
    target: str
    success: bool
    failures: list[DbtFailure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unique_ids skipped because something upstream failed
    elapsed: float = 0.0  # seconds, wall clock of the whole invocation
    run_results_path: Path | None = None
    nodes_run: int = 0
    args: list[str] = field(default_factory=list)

    def summary(self) -> str:
        head = (
            f"dbt build on {self.target}: {'OK' if self.success else 'FAILED'} "
            f"({self.nodes_run} nodes, {self.elapsed:.1f} s)"
        )
        lines = [head, *(f"  {f}" for f in self.failures)]
        if self.skipped:
            lines.append(f"  skipped because of the above: {len(self.skipped)} node(s)")
        return "\n".join(lines)


def dbt_env_from_dsn(dsn: str) -> dict[str, str]:
    """EVIDENT_PG_* variables for profiles/profiles.yml from a libpq URL or key=value DSN.

    Missing parts are left out (the profile's defaults apply). TLS settings and `options` go to libpq's own
    variables (PGSSLMODE, …), which dbt-postgres' driver honours. Raises ConfigError when the DSN is
    unparsable; the message never contains the DSN itself (it may hold a password).
    """
    try:
        parts = conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg.ProgrammingError; its text may quote the DSN
        raise ConfigError("EVIDENT_POSTGRES_DSN is not a valid libpq URL or key=value DSN") from exc
    env: dict[str, str] = {}
    for key, var in _PG_ENV_KEYS.items():
        value = parts.get(key)
        if value is None or str(value) == "":
            continue
        if key == "host" and "," in str(value):
            raise ConfigError("EVIDENT_POSTGRES_DSN names several hosts; dbt needs exactly one")
        env[var] = str(value)
    if "EVIDENT_PG_HOST" not in env and parts.get("hostaddr"):
        env["EVIDENT_PG_HOST"] = str(parts["hostaddr"])
    for key, var in _LIBPQ_ENV_KEYS.items():
        if parts.get(key):
            env[var] = str(parts[key])
    return env


@contextmanager
def temporary_environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block (dbt and GX read their settings from there)."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        os.environ.update(values)
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def default_target_dir(target: str, duckdb_path: str | os.PathLike[str] | None = None) -> Path:
    """dbt's working folder (--target-path) for one warehouse and target: target/work/<target>-<warehouse key>.

    One per warehouse, so that runs on different warehouses never share dbt's files, and one per target, so
    each keeps its partial-parse cache (dbt re-parses everything when the profile it last parsed with changes).
    The warehouse is named by its DuckDB file, which the run lock is also held on.
    """
    if duckdb_path is None:
        return REPO_ROOT / "target" / target
    key = hashlib.sha1(str(Path(duckdb_path).resolve()).encode()).hexdigest()[:10]
    return REPO_ROOT / "target" / "work" / f"{target}-{key}"


def build_args(
    target: str,
    *,
    full_refresh: bool = False,
    vars: Mapping[str, Any] | None = None,
    select: str | None = None,
    exclude: str | None = None,
    command: str = "build",
    target_dir: str | os.PathLike[str] | None = None,
) -> list[str]:
    """The dbt command line run_dbt_build uses (also what a person would type)."""
    import json

    target_dir = Path(target_dir) if target_dir is not None else default_target_dir(target)
    args = [
        command,
        "--project-dir", str(PROJECT_DIR),
        "--profiles-dir", str(PROFILES_DIR),
        "--target", target,
        "--target-path", str(target_dir),
        "--log-path", str(target_dir / "logs"),
    ]
    if full_refresh:
        args.append("--full-refresh")
    if vars:
        args += ["--vars", json.dumps(dict(vars), sort_keys=True)]
    if select:
        args += ["--select", select]
    if exclude:
        args += ["--exclude", exclude]
    return args


def run_dbt_build(
    target: str,
    *,
    duckdb_path: str | os.PathLike[str],
    pg_dsn: str | None,
    full_refresh: bool = False,
    vars: Mapping[str, Any] | None = None,
    select: str | None = None,
    exclude: str | None = None,
    target_dir: str | os.PathLike[str] | None = None,
    check_since_land_seq: int = 0,
    quiet: bool = True,
) -> DbtOutcome:
    """`dbt build` of the project on `target` (duckdb | postgres), in this process.

    `target_dir` is dbt's --target-path (artifacts: manifest, run_results.json, compiled SQL, logs); default
    default_target_dir(target, duckdb_path). Concurrent processes need different ones (dbt's files there are
    not safe to share between processes at the same time).

    `check_since_land_seq` scopes the heavy data tests to rows landed after it (EVIDENT_CHECK_SINCE_LAND_SEQ;
    0 = everything). It is always set, so a value left in the caller's environment never narrows a check.

    Never raises for a dbt failure: the outcome says what failed. Raises ConfigError for a bad target or a
    postgres target without a DSN.
    """
    if target not in TARGETS:
        raise ConfigError(f"unknown dbt target {target!r}; expected one of {', '.join(TARGETS)}")
    env = {"EVIDENT_DUCKDB_PATH": str(Path(duckdb_path).resolve()),
           "EVIDENT_CHECK_SINCE_LAND_SEQ": str(int(check_since_land_seq))}
    if target == "postgres":
        if not pg_dsn:
            raise ConfigError("target postgres needs EVIDENT_POSTGRES_DSN")
        register_dsn(pg_dsn)
        env.update(dbt_env_from_dsn(pg_dsn))
    target_dir = Path(target_dir).resolve() if target_dir is not None else default_target_dir(target, duckdb_path)
    args = build_args(
        target, full_refresh=full_refresh, vars=vars, select=select, exclude=exclude, target_dir=target_dir
    )
    if quiet:
        args = ["--quiet", *args]
    return _invoke(target, args, env, target_dir / "run_results.json")


def _invoke(target: str, args: list[str], env: Mapping[str, str], run_results_path: Path) -> DbtOutcome:
    from dbt.cli.main import dbtRunner  # imported lazily: ~2 s

    previous_results = run_results_path.stat().st_mtime_ns if run_results_path.exists() else None
    started = time.monotonic()
    with _DBT_LOCK, temporary_environment(env):
        try:
            result = dbtRunner().invoke(args)
        finally:
            if target == "duckdb":
                release_duckdb()
    elapsed = time.monotonic() - started

    failures: list[DbtFailure] = []
    skipped: list[str] = []
    nodes_run = 0
    run_results = getattr(result, "result", None)
    for node_result in getattr(run_results, "results", None) or []:
        nodes_run += 1
        status = str(getattr(node_result.status, "value", node_result.status))
        if status == "skipped":
            skipped.append(node_result.node.unique_id)
        elif status in _FAILED_STATUSES:
            node = node_result.node
            message = node_result.message or ""
            if status == "fail" and getattr(node_result, "failures", None):
                message = f"{node_result.failures} failing row(s)" + (f": {message}" if message else "")
            failures.append(
                DbtFailure(
                    node=node.unique_id,
                    name=node.name,
                    status=status,
                    message=redact(str(message)).strip(),
                )
            )
    if result.exception is not None:
        failures.append(DbtFailure("dbt", "dbt", "dbt", redact(str(result.exception)).strip()))
    success = bool(result.success) and not failures
    if not success and not failures:
        failures.append(DbtFailure("dbt", "dbt", "dbt", "dbt reported failure without naming a node"))
    return DbtOutcome(
        target=target,
        success=success,
        failures=failures,
        skipped=skipped,
        elapsed=elapsed,
        run_results_path=(
            run_results_path
            if run_results_path.exists() and run_results_path.stat().st_mtime_ns != previous_results
            else None  # dbt stopped before writing results (e.g. a parse error): no stale file is reported
        ),
        nodes_run=nodes_run,
        args=[redact(a) for a in args],
    )


def release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open at class level after an in-process run.

    Without this the file stays open (and locked against other processes) until this process exits, and a
    later connection from this process must use dbt-duckdb's exact configuration.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # dbt-duckdb not installed: nothing is open
        return
    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        if env is not None:
            try:
                env.close()
            finally:
                DuckDBConnectionManager._ENV = None


def run_dbt_docs(*, duckdb_path: str | os.PathLike[str], target: str = "duckdb", pg_dsn: str | None = None) -> Path:
    """`dbt docs generate` into target/docs; returns the index page (open it, or `dbt docs serve` there)."""
    env = {"EVIDENT_DUCKDB_PATH": str(Path(duckdb_path).resolve()),
           "EVIDENT_CHECK_SINCE_LAND_SEQ": str(int(check_since_land_seq))}
    if target == "postgres" and pg_dsn:
        register_dsn(pg_dsn)
        env.update(dbt_env_from_dsn(pg_dsn))
    target_dir = REPO_ROOT / "target" / "docs"
    args = build_args(target, command="docs", target_dir=target_dir)
    args.insert(1, "generate")
    outcome = _invoke(target, ["--quiet", *args], env, target_dir / "run_results.json")
    if not outcome.success:
        raise ConfigError(f"dbt docs generate failed: {'; '.join(str(f) for f in outcome.failures)}")
    return target_dir / "index.html"
