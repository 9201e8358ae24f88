"""Engines: one adapter interface (base.Engine), one small subclass per engine; how to connect to them."""
from __future__ import annotations

from .base import Engine, ErrorKind
from .duckdb import DuckDBEngine
from .postgres import PostgresEngine

ENGINE_CLASSES: tuple[type[Engine], ...] = (PostgresEngine, DuckDBEngine)

__all__ = ["Engine", "DuckDBEngine", "PostgresEngine", "classify", "open_engines"]


def classify(exc: BaseException) -> ErrorKind | None:
    """What an exception raised by a driver means (transient, terminal, configuration); None = not a driver
    error, i.e. a bug or a non-database fault the caller must decide on."""
    for cls in ENGINE_CLASSES:
        kind = cls.classify(exc)
        if kind is not None:
            return kind
    return None


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
