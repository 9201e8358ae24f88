"""DuckDB: the embedded fast path, one file per warehouse."""
from __future__ import annotations

import contextlib
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ConfigError
from .base import Engine, ErrorKind, Inserted, arrow_type

# Schema-qualified names Evident writes; DuckDB needs them catalog-qualified (see DuckDBEngine.sql). A string
# literal is matched whole first, so that text such as 'raw.orders' in one is left as it is.
_OWN_SCHEMA_REF = re.compile(
    r"(?P<literal>'(?:[^']|'')*')"
    r'|(?<![\w."])(raw|evident|analytics|published)\.(?=[A-Za-z_"])'
    r'|(?<=create schema if not exists )(raw|evident|analytics|published)\b', re.IGNORECASE)


class DuckDBEngine(Engine):
    name = "duckdb"
    TRANSIENT_MESSAGES = ("could not set lock on file",)

    def __init__(self, path: Path, *, read_only: bool = False):
        self.path = Path(path)
        self.read_only = read_only
        if read_only:
            if not self.path.is_file():
                raise ConfigError(f"no DuckDB warehouse at {self.path} (EVIDENT_DUCKDB_PATH); nothing has run "
                                  "here yet — `evident run` creates it")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con: duckdb.DuckDBPyConnection | None = None
        row = self.con.execute("select current_database()").fetchone()
        self.catalog = str(row[0]) if row else "memory"

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        # Default configuration only: dbt-duckdb may hold the same file open in-process (FACTS.md).
        if self._con is None:
            self._con = duckdb.connect(str(self.path), read_only=True) if self.read_only \
                else duckdb.connect(str(self.path))
        return self._con

    def release(self) -> None:
        """Close the file so an in-process dbt run can open it its own way; the next use reopens it."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def sql(self, text: str) -> str:
        """DuckDB dialect of our SQL: `?` placeholders, and schema names qualified with the file's catalog —
        a file named like one of the schemas (e.g. evident.duckdb) is a catalog of that name, which makes
        `evident.x` ambiguous."""
        catalog = '"' + self.catalog.replace('"', '""') + '".'
        return _OWN_SCHEMA_REF.sub(lambda m: m.group(0) if m.group("literal") else catalog + m.group(0),
                                   text.replace("%s", "?"))

    def execute(self, sql, params=()):
        self.con.execute(self.sql(sql), list(params))

    def executemany(self, sql, rows):
        if rows:
            self.con.executemany(self.sql(sql), [list(r) for r in rows])

    def fetchall(self, sql, params=()):
        return self.con.execute(self.sql(sql), list(params)).fetchall()

    def fetch_with_names(self, sql, params=()):
        cursor = self.con.execute(self.sql(sql), list(params))
        return [d[0] for d in cursor.description], cursor.fetchall()

    @contextlib.contextmanager
    def transaction(self):
        self.con.begin()
        try:
            yield self
        except BaseException:
            self.con.rollback()
            raise
        self.con.commit()

    def _arrow(self, columns, rows, types) -> pa.Table:
        arrays = [pa.array([r[i] for r in rows], type=arrow_type(t)) for i, t in enumerate(types)]
        return pa.Table.from_arrays(arrays, names=list(columns))

    def bulk_insert(self, table, columns, rows, types=None):
        if not rows:
            return
        if types is None:  # the target's own column types
            schema, _, name = table.rpartition(".")
            known = self.table_columns(schema or self.fetchvalue("select current_schema()"), name)
            types = [known[c] for c in columns]
        with self.arrow_relation("evident_bulk", self._arrow(columns, rows, types), ()) as relation:
            cols = ", ".join(columns)
            self.con.execute(self.sql(f"insert into {table} ({cols}) select {cols} from {relation}"))

    def create_stage(self, name, columns):
        cols = ", ".join(f"{column} {sql_type}" for column, sql_type in columns)
        self.con.execute(f"create or replace temp table {name} ({cols})")

    def append_arrow(self, table, rows):
        with self.arrow_relation("evident_arrow", rows, ()) as relation:
            self.con.execute(f"insert into {table} ({', '.join(rows.schema.names)}) select * from {relation}")

    @contextlib.contextmanager
    def arrow_relation(self, name, rows, columns):
        self.con.register(name, rows)  # the Arrow table itself, scanned in place
        try:
            yield name
        finally:
            self.con.unregister(name)

    def _run_insert_new(self, insert, params, relation, rows, line):
        # The insert returns the lines it wrote; the others, only when there are any (a chunk that met keys landed
        # before), are read from the chunk itself. Without their lines every row of such a chunk was kept for the
        # end-of-batch judgement: for a file whose duplicates are spread over it, nearly all of it, joined against
        # raw in one hash table (879 MiB of a 4.1 GiB peak for 5M lines, measured with duckdb_memory()).
        written = pa.array(self.con.execute(self.sql(f"{insert} returning {line}"), list(params)).fetchnumpy()[line])
        if len(written) == rows:
            return Inserted(rows, [])
        all_lines = pa.array(self.con.execute(f"select {line} from {relation}").fetchnumpy()[line])
        skipped = all_lines.filter(pc.invert(pc.is_in(all_lines, value_set=written)))
        return Inserted(len(written), skipped.to_pylist())

    def close(self):
        self.release()

    def hash48_sql(self, text_sql):
        return f"cast(('0x' || substr(md5({text_sql}), 1, 12)) as bigint)"

    def change_marker_sql(self, columns):
        # DuckDB hashes a row's columns about as fast as it reads them.
        return "sum(hash(" + ", ".join('"' + c.replace('"', '""') + '"' for c in columns) + "))"

    def _catalog_filter(self) -> str:
        return " and table_catalog = current_database()"

    def gx_environment(self):
        return {"EVIDENT_GX_DUCKDB_PATH": str(self.path.resolve())}

    def dbt_environment(self):
        return {"EVIDENT_DUCKDB_PATH": str(self.path.resolve())}

    @classmethod
    def classify(cls, exc: BaseException) -> ErrorKind | None:
        if not isinstance(exc, duckdb.Error):
            return None
        text = str(exc)
        if "Permission denied" in text:  # e.g. a commit that cannot create the WAL in a read-only folder
            return "configuration"
        # Another process holds the file lock, or a write-write conflict between transactions.
        if "Could not set lock" in text or isinstance(exc, duckdb.TransactionException):
            return "transient"
        if isinstance(exc, duckdb.IOException) and ("Read-only" in text or "read-only" in text
                                                    or "not a valid DuckDB database file" in text):
            return "configuration"  # EVIDENT_DUCKDB_PATH names a file or folder we cannot use as a warehouse
        return "terminal"
