"""Run the dbt project (dbt_project/, profiles/) in-process with dbtRunner, on one target at a time.

    outcome = run_dbt_build("duckdb", duckdb_path="warehouse/warehouse.duckdb", pg_dsn=None)
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evident.config import temporary_environment
from evident.engines import ENGINE_CLASSES, dbt_target_environment
from evident.errors import ConfigError
from evident.project import Project, find_project
from evident.secrets import redact

TARGETS = tuple(cls.name for cls in ENGINE_CLASSES)  # dbt targets are named like the engines

# dbt's own statuses that mean "this node did not do its job" (a node skipped because of one is listed apart)
_FAILED_STATUSES = {"error", "fail", "runtime error"}

_DBT_LOCK = threading.Lock()

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


UNIT_TESTS = "resource_type:unit_test"  # dbt's selector of every unit test
_NOT_CODE = ("target", "logs", "dbt_packages")  # what dbt writes into its project folder


def code_fingerprint(project: Project, engine_version: str) -> str:
    """What a unit test's result depends on: every file of the dbt project (not dbt's output), the versions of
    dbt and its adapters, the engine's. Unit tests read fixed inputs, so the same fingerprint, the same result."""
    from importlib import metadata

    digest = hashlib.sha256()
    root = project.dbt_project_dir
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if path.is_file() and parts[0] not in _NOT_CODE and not any(part.startswith(".") for part in parts):
            digest.update(b"%s\0%d\0" % ("/".join(parts).encode(), path.stat().st_size) + path.read_bytes())
    for package in ("dbt-core", "dbt-duckdb", "dbt-postgres"):
        digest.update(f"{package}=={metadata.version(package)}\n".encode())
    digest.update(engine_version.encode())
    return digest.hexdigest()[:32]


def default_target_dir(target: str, duckdb_path: str | os.PathLike[str] | None = None,
                       project: Project | None = None) -> Path:
    """dbt's working folder (--target-path) for one warehouse and target: target/work/<target>-<warehouse key>.

    One per warehouse, so that runs on different warehouses never share dbt's files, and one per target, so
    each keeps its partial-parse cache (dbt re-parses everything when the profile it last parsed with changes).
    The warehouse is named by its DuckDB file, which the run lock is also held on.
    """
    target_root = (project or find_project()).target_dir
    if duckdb_path is None:
        return target_root / target
    key = hashlib.sha1(str(Path(duckdb_path).resolve()).encode()).hexdigest()[:10]
    return target_root / "work" / f"{target}-{key}"


def build_args(
    target: str,
    *,
    full_refresh: bool = False,
    vars: Mapping[str, Any] | None = None,
    select: str | None = None,
    exclude: str | None = None,
    command: str = "build",
    target_dir: str | os.PathLike[str] | None = None,
    project: Project | None = None,
) -> list[str]:
    """The dbt command line run_dbt_build uses (also what a person would type)."""
    import json

    project = project or find_project()
    target_dir = Path(target_dir) if target_dir is not None else default_target_dir(target, project=project)
    args = [
        command,
        "--project-dir", str(project.dbt_project_dir),
        "--profiles-dir", str(project.profiles_dir),
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


def dbt_environment(target: str, duckdb_path: str | os.PathLike[str], pg_dsn: str | None) -> dict[str, str]:
    """The variables profiles/profiles.yml reads for one target."""
    if target not in TARGETS:
        raise ConfigError(f"unknown dbt target {target!r}; expected one of {', '.join(TARGETS)}")
    return dbt_target_environment(target, duckdb_path, pg_dsn)


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
    project: Project | None = None,
    command: str = "build",
) -> DbtOutcome:
    """`dbt build` of the project on `target` (duckdb | postgres), in this process (`command="run"`: the
    models only, no tests — what the full refresh's drift audit uses to bring the incremental marts up to date).

    `target_dir` is dbt's --target-path (artifacts: manifest, run_results.json, compiled SQL, logs); default
    default_target_dir(target, duckdb_path). Concurrent processes need different ones (dbt's files there are
    not safe to share between processes at the same time).

    `check_since_land_seq` scopes the heavy data tests to rows landed after it (EVIDENT_CHECK_SINCE_LAND_SEQ;
    0 = everything). It is always set, so a value left in the caller's environment never narrows a check.

    Never raises for a dbt failure: the outcome says what failed. Raises ConfigError for a bad target or a
    postgres target without a DSN.
    """
    project = project or find_project()
    env = dbt_environment(target, duckdb_path, pg_dsn)
    env["EVIDENT_CHECK_SINCE_LAND_SEQ"] = str(int(check_since_land_seq))
    target_dir = (Path(target_dir).resolve() if target_dir is not None
                  else default_target_dir(target, duckdb_path, project))
    args = build_args(
        target, full_refresh=full_refresh, vars=vars, select=select, exclude=exclude, target_dir=target_dir,
        project=project, command=command,
    )
    if quiet:
        args = ["--quiet", *args]
    return invoke_dbt(target, args, env, target_dir / "run_results.json")


def invoke_dbt(target: str, args: list[str], env: Mapping[str, str], run_results_path: Path) -> DbtOutcome:
    from dbt.cli.main import dbtRunner  # imported lazily: ~2 s

    previous_results = run_results_path.stat().st_mtime_ns if run_results_path.exists() else None
    started = time.monotonic()
    with _DBT_LOCK, temporary_environment(env):
        try:
            result = dbtRunner().invoke(args)
        finally:
            release_duckdb()  # a no-op unless dbt-duckdb left a database open
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
