"""Engines: one adapter interface (base.Engine), one small subclass per engine; how to connect to them."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .base import Engine, ErrorKind, Inserted, arrow_schema, arrow_type
from .duckdb import DuckDBEngine
from .postgres import PostgresEngine, dbt_env_from_dsn

ENGINE_CLASSES: tuple[type[Engine], ...] = (PostgresEngine, DuckDBEngine)

__all__ = ["Engine", "DuckDBEngine", "Inserted", "PostgresEngine", "arrow_schema", "arrow_type", "classify",
           "dbt_target_environment", "is_transient_message", "open_engines"]


def classify(exc: BaseException) -> ErrorKind | None:
    """What an exception raised by a driver means (transient, terminal, configuration); None = not a driver
    error, i.e. a bug or a non-database fault the caller must decide on."""
    for cls in ENGINE_CLASSES:
        kind = cls.classify(exc)
        if kind is not None:
            return kind
    return None


def is_transient_message(text: str) -> bool:
    """Whether a tool's error text (dbt, GX) reports a transient fault of one of the engines."""
    return any(cls.is_transient_message(text) for cls in ENGINE_CLASSES)


def dbt_target_environment(target: str, duckdb_path, postgres_dsn: str | None) -> dict[str, str]:
    """The variables profiles/profiles.yml reads for a dbt target named like an engine. The DuckDB path is
    always set (dbt renders every target of the profile)."""
    env = {"EVIDENT_DUCKDB_PATH": str(Path(duckdb_path).resolve())}
    if target == PostgresEngine.name:
        if not postgres_dsn:
            raise ConfigError("target postgres needs EVIDENT_POSTGRES_DSN")
        env.update(dbt_env_from_dsn(postgres_dsn))
    return env


def open_engines(duckdb_path, postgres_dsn: str | None, application_name: str, *,
                 read_only: bool = False) -> list[Engine]:
    """Postgres (authoritative) first when configured, then DuckDB. Not retried here (see evident.retry)."""
    engines: list[Engine] = []
    try:
        if postgres_dsn:
            engines.append(PostgresEngine(postgres_dsn, application_name))
        engines.append(DuckDBEngine(duckdb_path, read_only=read_only))
    except BaseException:
        for engine in engines:
            engine.close()
        raise
    return engines
