"""`evident docs`: the dbt docs site and the Data Docs of the gate, both readable from disk (file://, offline).

- dbt: `dbt docs generate --static` writes target/docs/static_index.html, one file holding the manifest and
  the catalog. (dbt's index.html, written beside it for `dbt docs serve`, fetches manifest.json and
  catalog.json, which a browser refuses to do for a page opened from disk.) The catalog — column types, from
  the DuckDB warehouse — needs the warehouse; before the first run the models are documented without it, and
  no warehouse file is created.
- Great Expectations: the suites and the stored validation results, rendered by GX with the assets its pages
  would load from CDNs copied into the site (evident.gate.data_docs).

Both read what a run writes (the warehouse, GX's stored results), so the warehouse lock is held meanwhile: a
running `evident run` makes `evident docs` exit 75 naming it. Postgres is not needed.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from evident.build.dbt import build_args, dbt_environment, invoke_dbt
from evident.config import Settings
from evident.errors import ConfigError

DBT_DOCS_PAGE = "static_index.html"


def run_dbt_docs(settings: Settings, *, target: str = "duckdb") -> Path:
    """`dbt docs generate --static` into target/docs; returns the page (static_index.html) that opens from disk."""
    env = dbt_environment(target, settings.duckdb_path, settings.postgres_dsn)
    env["EVIDENT_CHECK_SINCE_LAND_SEQ"] = "0"  # compiled SQL shows the whole-table checks, whatever the caller has
    target_dir = settings.project.target_dir / "docs"
    page = target_dir / DBT_DOCS_PAGE

    def dbt(*command: str) -> None:
        args = build_args(target, command=command[0], target_dir=target_dir, project=settings.project)
        args[1:1] = command[1:]
        outcome = invoke_dbt(target, ["--quiet", *args], env, target_dir / "run_results.json")
        if not outcome.success:
            raise ConfigError(f"dbt {' '.join(command)} failed: {'; '.join(str(f) for f in outcome.failures)}")

    previous = page.stat().st_mtime_ns if page.exists() else None
    if target == "duckdb" and not settings.duckdb_path.exists():
        # No warehouse yet: --empty-catalog --no-compile opens no connection (dbt-duckdb would create the file);
        # that docs generate reads the manifest `dbt parse` wrote.
        dbt("parse")
        dbt("docs", "generate", "--static", "--empty-catalog", "--no-compile")
    else:
        dbt("docs", "generate", "--static")
    if not page.is_file() or page.stat().st_mtime_ns == previous:
        raise ConfigError(f"dbt docs generate --static wrote no {page}")
    return page


def build_docs(settings: Settings, *, wait: bool = False) -> tuple[Path, Path]:
    """Both sites; returns (dbt docs page, Data Docs index), each a file that opens in a browser offline."""
    from evident.gate.data_docs import build_data_docs

    with _warehouse_lock(settings, wait):
        return run_dbt_docs(settings), build_data_docs(settings.project.expectations_dir)


def _warehouse_lock(settings: Settings, wait: bool) -> contextlib.AbstractContextManager:
    """The run lock's file half (beside the DuckDB file), unless there is no warehouse folder to hold it yet."""
    if not settings.duckdb_path.parent.is_dir():
        return contextlib.nullcontext()
    from evident.control.lock import RunLock
    from evident.control.runs import new_run_id

    # Only the file lock: docs read the DuckDB file and the project folder, never Postgres.
    return RunLock(settings.duckdb_path, None, new_run_id(), "docs", wait)
