"""Great Expectations on DuckDB through SQLAlchemy, with the one fix GX 1.24 needs (FACTS.md).

Why a fix is needed: for dialects GX does not list in `_PERSISTED_CONNECTION_DIALECTS`,
`SqlAlchemyExecutionEngine.execute_query` runs each query in `with engine.connect()` and returns the result
*after* that connection closed. Closing rolls back, DuckDB drops the pending result on rollback, and
`fetchall()` gives `[]` — every expectation then fails with an IndexError in `resolve_metric_bundle`.

The route taken here keeps everything in SQL (GX pushes each metric bundle down as one aggregate query; only
aggregates and a few LIMITed failing values come back, so memory stays bounded however large the marts are):

- `PersistentConnectionSqlAlchemyExecutionEngine`: one SQLAlchemy connection kept open for the engine's life
  (what GX already does for sqlite), so results are fetched before anything rolls back; `close()` closes it
  and disposes the SQLAlchemy engine, which releases the DuckDB file.
- `EvidentDuckDBDatasource` (fluent type `evident_duckdb`): a SQL datasource whose SQLAlchemy engine opens
  DuckDB with `duckdb.connect(path)` in the DEFAULT configuration. duckdb-engine's own connect adds a
  `custom_user_agent` setting, and an in-process dbt-duckdb (or Evident's own DuckDBEngine) holding the same
  file open makes any connection with a different configuration fail ("Can't open a connection to same
  database file with a different configuration"). NullPool: each checkout is its own DuckDB connection to the
  same in-process database instance, so a reflection connection closing (and rolling back) never touches the
  validation connection.

Importing this module registers the `evident_duckdb` datasource type with GX's fluent datasource registry;
the gate imports it before loading the file project (expectations/gx/great_expectations.yml names the type).
"""
from __future__ import annotations

import builtins
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any, Literal

import duckdb
import sqlalchemy as sa
from great_expectations.datasource.fluent.sql_datasource import SQLDatasource
from great_expectations.execution_engine import SqlAlchemyExecutionEngine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

DATASOURCE_TYPE = "evident_duckdb"


def duckdb_path_from_url(connection_string: str) -> str:
    """`duckdb:////abs/path.duckdb` or `duckdb:///rel/path.duckdb` → the path DuckDB opens."""
    url = make_url(connection_string)
    if url.get_backend_name() != "duckdb":
        raise ValueError(f"not a duckdb URL (backend {url.get_backend_name()!r})")
    if not url.database:
        raise ValueError("the duckdb URL names no database file")
    return url.database


def create_duckdb_sa_engine(path: str) -> sa.Engine:
    """A SQLAlchemy engine on a DuckDB file whose connections use DuckDB's default configuration."""
    from duckdb_engine import ConnectionWrapper  # the DB-API shim duckdb-engine's dialect expects

    def creator() -> Any:
        return ConnectionWrapper(duckdb.connect(path))

    return sa.create_engine("duckdb:///" + path, creator=creator, poolclass=NullPool)


class PersistentConnectionSqlAlchemyExecutionEngine(SqlAlchemyExecutionEngine):
    """Keeps one connection open for every query (the sqlite treatment, for DuckDB)."""

    @contextmanager
    def get_connection(self) -> Generator[sa.Connection, None, None]:
        if self._connection is None or self._connection.closed:
            self._connection = self.engine.connect()
        yield self._connection

    def close(self) -> None:
        connection, self._connection = self._connection, None
        try:
            if connection is not None and not connection.closed:
                try:
                    connection.rollback()  # read-only work; ends the snapshot before closing
                finally:
                    connection.close()
        finally:
            self.engine.dispose()


class EvidentDuckDBDatasource(SQLDatasource):
    """SQL datasource on a DuckDB file, e.g. `connection_string: duckdb:///${EVIDENT_GX_DUCKDB_PATH}`."""

    type: Literal["evident_duckdb"] = "evident_duckdb"  # type: ignore[assignment]

    @property
    def execution_engine_type(self) -> builtins.type[SqlAlchemyExecutionEngine]:
        return PersistentConnectionSqlAlchemyExecutionEngine

    def _substituted_connection_string(self) -> str:
        model_dict = self.dict(config_provider=self._config_provider)
        return str(model_dict["connection_string"])

    def _create_engine(self) -> sa.Engine:
        return create_duckdb_sa_engine(duckdb_path_from_url(self._substituted_connection_string()))

    def get_execution_engine(self) -> SqlAlchemyExecutionEngine:
        """One execution engine on this datasource's SQLAlchemy engine (not one per connection-string build:
        GX's default would create a second engine through duckdb-engine's own connect)."""
        if self._execution_engine is None:
            self._execution_engine = PersistentConnectionSqlAlchemyExecutionEngine(
                name=self.name, engine=self.get_engine(), create_temp_table=False
            )
        return self._execution_engine

    def close(self) -> None:
        """Close the validation connection and dispose the engine: the DuckDB file is free afterwards."""
        engine, self._execution_engine = self._execution_engine, None
        try:
            if engine is not None:
                engine.close()
        finally:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
