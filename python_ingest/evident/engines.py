"""One adapter per engine with the same small interface; engine differences live here and nowhere else.

SQL elsewhere is written once with `%s` placeholders in the dialect both engines share.
"""
from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Iterator, Sequence

import duckdb
import psycopg
import pyarrow as pa

from . import schema
from .secrets import register_dsn

# Arrow types for the bulk path into DuckDB (explicit so all-null columns keep their type).
_ARROW_TYPES = {
    "idempotency_key": pa.string(), "event_id": pa.string(), "user_id": pa.int64(),
    "event_ts": pa.timestamp("us"), "event_type": pa.string(), "value": pa.decimal128(18, 2),
    "app_version": pa.string(), "properties": pa.string(), "payload_sha256": pa.string(),
    "batch_id": pa.string(), "land_seq": pa.int64(), "source_file": pa.string(), "source_line": pa.int32(),
    "contract_id": pa.string(), "landed_at": pa.timestamp("us"), "line_number": pa.int32(),
    "reason_code": pa.string(), "message": pa.string(), "raw_text": pa.string(),
    "quarantined_at": pa.timestamp("us"),
}
STAGE_KEYS_COLUMNS = ("idempotency_key", "payload_sha256", "source_line")
# Schema-qualified names Evident writes; DuckDB needs them catalog-qualified (see DuckDBEngine.sql).
_OWN_SCHEMA_REF = re.compile(
    r'(?<![\w."])(raw|evident|analytics|published)\.(?=[A-Za-z_"])'
    r'|(?<=create schema if not exists )(raw|evident|analytics|published)\b', re.IGNORECASE)


class Engine:
    """A connection to one warehouse engine. `name` is 'duckdb' or 'postgres'."""

    name: str

    def execute(self, sql: str, params: Sequence = ()) -> None:
        raise NotImplementedError

    def fetchall(self, sql: str, params: Sequence = ()) -> list[tuple]:
        raise NotImplementedError

    def fetchone(self, sql: str, params: Sequence = ()) -> tuple | None:
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Engine"]:
        raise NotImplementedError
        yield self  # pragma: no cover

    def bulk_insert(self, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
        """Set-based load of many rows (never one INSERT per row)."""
        raise NotImplementedError

    def stage_keys(self, rows: list[tuple]) -> str:
        """Load (idempotency_key, payload_sha256, source_line) rows into a transaction-local stage; return its name."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def ensure_schema(self) -> None:
        with self.transaction():
            for statement in schema.DDL:
                self.execute(statement)


class DuckDBEngine(Engine):
    name = "duckdb"

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._con: duckdb.DuckDBPyConnection | None = None
        self.catalog = self.con.execute("select current_database()").fetchone()[0]

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        # Default configuration only: dbt-duckdb may hold the same file open in-process (FACTS.md).
        if self._con is None:
            self._con = duckdb.connect(str(self.path))
        return self._con

    def release(self) -> None:
        """Close the file so an in-process dbt run can open it its own way; the next use reopens it."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def sql(self, text: str) -> str:
        """DuckDB dialect of our SQL: `?` placeholders, and schema names qualified with the file's catalog —
        the default file evident.duckdb is itself a catalog named `evident`, which makes `evident.x` ambiguous."""
        catalog = '"' + self.catalog.replace('"', '""') + '".'
        return _OWN_SCHEMA_REF.sub(lambda m: catalog + m.group(0), text.replace("%s", "?"))

    def execute(self, sql, params=()):
        self.con.execute(self.sql(sql), list(params))

    def fetchall(self, sql, params=()):
        return self.con.execute(self.sql(sql), list(params)).fetchall()

    @contextlib.contextmanager
    def transaction(self):
        self.con.begin()
        try:
            yield self
        except BaseException:
            self.con.rollback()
            raise
        self.con.commit()

    def _arrow(self, columns, rows) -> pa.Table:
        arrays = [pa.array([r[i] for r in rows], type=_ARROW_TYPES.get(c)) for i, c in enumerate(columns)]
        return pa.Table.from_arrays(arrays, names=list(columns))

    def bulk_insert(self, table, columns, rows):
        if not rows:
            return
        self.con.register("evident_bulk", self._arrow(columns, rows))
        try:
            cols = ", ".join(columns)
            self.con.execute(self.sql(f"insert into {table} ({cols}) select {cols} from evident_bulk"))
        finally:
            self.con.unregister("evident_bulk")

    def stage_keys(self, rows):
        self.con.register("evident_stage_keys", self._arrow(STAGE_KEYS_COLUMNS, rows))
        return "evident_stage_keys"

    def close(self):
        self.release()


class PostgresEngine(Engine):
    name = "postgres"

    def __init__(self, dsn: str, application_name: str = "evident"):
        register_dsn(dsn)
        self._dsn = dsn
        self._application_name = application_name
        self._con: psycopg.Connection | None = None
        self._connect()

    def _connect(self) -> None:
        self._con = psycopg.connect(self._dsn, autocommit=True, connect_timeout=10,
                                    application_name=self._application_name)

    @property
    def dsn(self) -> str:
        """The DSN (holds a secret: never log it; evident.secrets.redact masks it)."""
        return self._dsn

    @property
    def con(self) -> psycopg.Connection:
        """The session, reopened when a fault closed it (the retry of a whole transaction lands here)."""
        if self._con is None or self._con.closed:
            self._connect()
        return self._con

    def execute(self, sql, params=()):
        self.con.execute(sql, list(params) or None)

    def fetchall(self, sql, params=()):
        return self.con.execute(sql, list(params) or None).fetchall()

    @contextlib.contextmanager
    def transaction(self):
        with self.con.transaction():
            yield self

    def bulk_insert(self, table, columns, rows):
        if not rows:
            return
        with self.con.cursor() as cur, cur.copy(f"copy {table} ({', '.join(columns)}) from stdin") as copy:
            for row in rows:
                copy.write_row(row)

    def stage_keys(self, rows):
        self.execute(
            "create temp table if not exists evident_stage_keys "
            "(idempotency_key varchar(64), payload_sha256 varchar(64), source_line integer) on commit drop"
        )
        self.bulk_insert("evident_stage_keys", STAGE_KEYS_COLUMNS, rows)
        self.execute("analyze evident_stage_keys")
        return "evident_stage_keys"

    def ensure_schema(self) -> None:
        super().ensure_schema()
        # The incremental models find new rows by land_seq and read touched users' history by user_id.
        # (DuckDB gets no secondary indexes: they make its large deletes and commits far slower.)
        with self.transaction():
            self.execute("create index if not exists app_events_land_seq on raw.app_events (land_seq)")
            self.execute("create index if not exists app_events_user_id on raw.app_events (user_id)")

    def close(self):
        if self._con is not None:
            self._con.close()

