"""The adapter interface every engine implements; engine differences live in this package and nowhere else.

SQL elsewhere is written once with `%s` placeholders in the dialect both engines share. Where the dialects
differ (hashing, catalog lookups, session settings, error classes, how GX or dbt connect), the caller asks the
adapter for the piece, as SQLMesh's diff code asks its engine adapter.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any, Literal, NamedTuple

import pyarrow as pa

ErrorKind = Literal["transient", "terminal", "configuration"]
_ARROW_TYPES = {"varchar": pa.string(), "bigint": pa.int64(), "integer": pa.int32(), "boolean": pa.bool_(),
                "timestamp": pa.timestamp("us"), "date": pa.date32()}
_DECIMAL = re.compile(r"decimal\((\d+),(\d+)\)")


class Inserted(NamedTuple):
    rows: int
    skipped_lines: list[int]  # the `line` of each row not inserted (its key was there already)


def arrow_type(sql_type: str) -> pa.DataType:
    """The Arrow type of a column of Evident's DDL vocabulary (explicit, so all-null columns keep theirs).
    Arrow is how bulk rows reach every engine (Engine.append_arrow)."""
    decimal = _DECIMAL.fullmatch(sql_type)
    if decimal:
        return pa.decimal128(int(decimal[1]), int(decimal[2]))
    return _ARROW_TYPES[sql_type.split("(")[0]]


def arrow_schema(columns: Sequence[tuple[str, str]]) -> pa.Schema:
    """The Arrow schema of (name, type) columns of Evident's DDL vocabulary."""
    return pa.schema([(name, arrow_type(sql_type)) for name, sql_type in columns])


class Engine:
    """A connection to one warehouse engine. `name` ('duckdb' or 'postgres') names it in tables and messages."""

    name: str
    # Capabilities (SQLMesh-style class attributes): what callers may rely on without asking which engine.
    AUTHORITATIVE = False  # the store of record (Postgres); the other engine is the fast path it is checked against
    SUPPORTS_ROLES = False  # GRANT/ROLE (DuckDB's access control is its file's permissions)
    WANTS_SECONDARY_INDEXES = False  # indexes for the incremental reads pay for themselves

    # ---- running SQL
    def execute(self, sql: str, params: Sequence = ()) -> None:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Sequence[Sequence]) -> None:
        """One statement, many parameter rows (small control-plane writes; bulk data goes via bulk_insert)."""
        raise NotImplementedError

    def fetchall(self, sql: str, params: Sequence = ()) -> list[tuple]:
        raise NotImplementedError

    def fetchone(self, sql: str, params: Sequence = ()) -> tuple | None:
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    def fetchvalue(self, sql: str, params: Sequence = ()) -> Any:
        """The single value of a query that returns one row (an aggregate, a lookup that must succeed)."""
        row = self.fetchone(sql, params)
        if row is None:
            raise LookupError(f"query returned no row: {' '.join(sql.split())[:120]}")
        return row[0]

    def fetch_with_names(self, sql: str, params: Sequence = ()) -> tuple[list[str], list[tuple]]:
        """Column names and rows of a query."""
        raise NotImplementedError

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Engine]:
        raise NotImplementedError
        yield self  # pragma: no cover

    def bulk_insert(self, table: str, columns: Sequence[str], rows: list[tuple],
                    types: Sequence[str] | None = None) -> None:
        """Set-based load of many rows (never one INSERT per row). `types`: the columns' SQL types, where the
        engine needs them to load (default: the table's own)."""
        raise NotImplementedError

    # ---- bulk rows in Arrow (landing: evident.land.stage)
    def create_stage(self, name: str, columns: Sequence[tuple[str, str]]) -> None:
        """An empty temporary table of these (name, type) columns, gone when the transaction ends."""
        raise NotImplementedError

    def append_arrow(self, table: str, rows: pa.Table) -> None:
        """Append an Arrow table to `table`'s columns of the same names."""
        raise NotImplementedError

    @contextlib.contextmanager
    def arrow_relation(self, name: str, rows: pa.Table, columns: Sequence[tuple[str, str]]) -> Iterator[str]:
        """`rows` (of these (name, type) columns) queryable under `name` while the block runs."""
        raise NotImplementedError
        yield name  # pragma: no cover

    def insert_new(self, table: str, key: str, rows: pa.Table, columns: Sequence[tuple[str, str]],
                   constants: Sequence[tuple[str, str, Any]], line: str) -> Inserted:
        """Insert `rows` (these (name, type) columns) and the (name, type, value) constants into `table`, except
        the rows whose `key` is there already (what holds a key first stays); which rows were not inserted, by
        their `line` (a column unique in `rows`)."""
        names = [name for name, _ in columns]
        with self.arrow_relation("evident_stage_chunk", rows, columns) as relation:
            insert = (f"insert into {table} ({', '.join(names + [name for name, _, _ in constants])}) "
                      f"select {', '.join(names + [f'cast(%s as {sql_type})' for _, sql_type, _ in constants])} "
                      f"from {relation} on conflict ({key}) do nothing")
            return self._run_insert_new(insert, [value for _, _, value in constants], relation, rows.num_rows, line)

    def _run_insert_new(self, insert: str, params: list, relation: str, rows: int, line: str) -> Inserted:
        """Run insert_new's INSERT of `relation`'s rows: how many it wrote, and the `line` of each it skipped."""
        raise NotImplementedError

    def join_on_primary_key(self, table: str, alias: str, key: str, outer: str) -> str:
        """A join clause: the row of `table` (as `alias`) whose primary key `key` equals that of `outer`'s row, for
        a few outer rows against a large table (a hash join of them here)."""
        return f"join {table} {alias} on {alias}.{key} = {outer}.{key}"

    def release(self) -> None:
        """Let an in-process tool (dbt, GX) open the database its own way; the next use reconnects."""

    def close(self) -> None:
        raise NotImplementedError

    # ---- run lock (engines whose server is shared between hosts hold one too)
    def try_advisory_lock(self, key: int) -> bool:
        raise NotImplementedError

    def advisory_lock_holder(self, key: int) -> str:
        raise NotImplementedError

    # ---- dialect pieces
    def session_setup(self) -> None:
        """Pin session settings the canonical row text depends on (see evident.fingerprint)."""

    def hash48_sql(self, text_sql: str) -> str:
        """md5 of a text expression as a 48-bit integer (sums of them cannot overflow either engine)."""
        raise NotImplementedError

    # Whether this engine records the partitions every write touches (evident.partition_changes, kept by the
    # triggers reconciliation_ddl installs); an engine that does not marks its rows instead (change_marker_sql).
    RECORDS_CHANGES = False

    def change_marker_sql(self, columns: Sequence[str]) -> str:
        """An aggregate over a group of rows that changes whenever one of them is inserted, updated or deleted
        (with the row count beside it), for an engine that does not record changes. Engine-local: only ever
        compared with what the same engine gave before (evident.reconcile.stored)."""
        raise NotImplementedError

    def reconciliation_ddl(self, schema: str, table: str, column: str, *, timestamp: bool,
                           index: bool) -> list[str]:
        """Statements that let reconciliation read `schema.table` by the date of `column` cheaply (names already
        validated as plain identifiers): where the engine records changes, what records them; its statistics on
        the date of a `timestamp` column; with `index`, an index on the column. None by default."""
        return []

    def table_exists(self, schema: str, table: str) -> bool:
        row = self.fetchone("select count(*) from information_schema.tables where table_schema = %s "
                            f"and table_name = %s{self._catalog_filter()}", [schema, table])
        return bool(row and row[0])

    def _catalog_filter(self) -> str:
        return ""

    def table_columns(self, schema: str, table: str) -> dict[str, str]:
        """Column name → type in Evident's DDL vocabulary (varchar, bigint, integer, decimal(p,s), boolean,
        timestamp, date), in table order; {} when the table does not exist."""
        rows = self.fetchall(
            "select column_name, data_type, character_maximum_length, numeric_precision, numeric_scale "
            f"from information_schema.columns where table_schema = %s and table_name = %s{self._catalog_filter()} "
            "order by ordinal_position", [schema, table])
        return {name: self._normalise_type(str(kind).lower(), length, precision, scale)
                for name, kind, length, precision, scale in rows}

    @staticmethod
    def _normalise_type(kind: str, length, precision, scale) -> str:
        """One spelling per type on every engine; a varchar's length is not kept (DuckDB ignores it)."""
        if kind.startswith(("decimal", "numeric")):
            return f"decimal({precision},{scale or 0})" if precision is not None else kind.replace(" ", "")
        return {"character varying": "varchar", "timestamp without time zone": "timestamp"}.get(
            kind, kind.split("(")[0])

    @contextlib.contextmanager
    def scan_settings(self) -> Iterator[None]:
        """Settings for large aggregate scans (reconciliation), scoped to one transaction where supported."""
        yield

    # ---- how other tools reach this engine
    def gx_environment(self) -> dict[str, str]:
        """Variables the GX file project's datasource of this engine reads its connection from."""
        raise NotImplementedError

    def dbt_environment(self) -> dict[str, str]:
        """Variables profiles/profiles.yml reads this engine's connection from."""
        raise NotImplementedError

    # ---- errors
    # Message fragments of this engine's transient faults as other tools (dbt, GX) report them: they hand us
    # text, not the driver's exception, so their errors are classified by what the driver said.
    TRANSIENT_MESSAGES: tuple[str, ...] = ()

    @classmethod
    def classify(cls, exc: BaseException) -> ErrorKind | None:
        """What a driver error of this engine means; None when `exc` is not this engine's driver error."""
        return None

    @classmethod
    def is_transient_message(cls, text: str) -> bool:
        lowered = text.lower()
        return any(fragment in lowered for fragment in cls.TRANSIENT_MESSAGES)
