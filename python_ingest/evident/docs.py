"""`evident docs`: the dbt docs site and the Data Docs of the gate, both readable from disk."""
from __future__ import annotations

from pathlib import Path

from evident.build.dbt import build_args, dbt_environment, invoke_dbt
from evident.config import Settings
from evident.errors import ConfigError


def run_dbt_docs(settings: Settings, *, target: str = "duckdb") -> Path:
    """`dbt docs generate` into target/docs; returns the index page."""
    env = dbt_environment(target, settings.duckdb_path, settings.postgres_dsn)
    target_dir = settings.project.target_dir / "docs"
    args = build_args(target, command="docs", target_dir=target_dir, project=settings.project)
    args.insert(1, "generate")
    outcome = invoke_dbt(target, ["--quiet", *args], env, target_dir / "run_results.json")
    if not outcome.success:
        raise ConfigError(f"dbt docs generate failed: {'; '.join(str(f) for f in outcome.failures)}")
    return target_dir / "index.html"


def build_docs(settings: Settings) -> tuple[Path, Path]:
    """Both sites; returns (dbt docs index, Data Docs index)."""
    from evident.gate.data_docs import build_data_docs

    return run_dbt_docs(settings), build_data_docs(settings.project.expectations_dir)
