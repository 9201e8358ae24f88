"""PostgreSQL: the authoritative store, through psycopg 3."""
from __future__ import annotations

import contextlib
import io
import re

import psycopg
import pyarrow.csv as pa_csv
from psycopg.conninfo import conninfo_to_dict

from ..errors import ConfigError
from ..secrets import register_dsn
from .base import Engine, ErrorKind, Inserted

# SQLSTATEs worth another try: serialization failure, deadlock, admin/crash shutdown, cannot connect now,
# statement timeout / cancel, lock not available, too many connections, connection exceptions.
TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03", "57014", "55P03", "53300",
                       "08000", "08001", "08003", "08004", "08006"}
# SQLSTATEs that mean the configuration is wrong, not the data: invalid authorization (class 28),
# insufficient privilege, database does not exist.
CONFIGURATION_SQLSTATES = {"42501", "3D000"}
CONFIGURATION_CLASSES = {"28"}

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


def parse_dsn(dsn: str) -> dict[str, str]:
    """The DSN's parameters. A malformed DSN is a configuration error (exit 2), found before any connection
    attempt (libpq would otherwise fail to resolve it over and over, like a server that is down). The message
    never quotes the DSN: it may hold a password."""
    try:
        parts = conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg.ProgrammingError; its text quotes parts of the DSN
        reason = re.sub(r'"[^"]*"', '"…"', " ".join(str(exc).split())).rstrip(":. ")
        raise ConfigError(f"EVIDENT_POSTGRES_DSN is not a valid libpq URL or key=value DSN ({reason}); "
                          "expected e.g. postgresql://user@host:5432/dbname or 'host=… dbname=…'") from None
    port = str(parts.get("port") or "")
    bad_ports = [p for p in port.split(",") if p.strip() and not p.strip().isdigit()]
    if bad_ports:
        raise ConfigError(f"EVIDENT_POSTGRES_DSN: port {bad_ports[0]!r} is not a port number")
    return {k: str(v) for k, v in parts.items() if v is not None and str(v) != ""}


def dsn_password(dsn: str) -> str | None:
    """The password inside a DSN, if any; the whole DSN when it cannot be parsed (then it is masked whole)."""
    try:
        password = conninfo_to_dict(dsn).get("password")
    except Exception:
        return dsn
    return str(password) if password else None


# One row per (statement, partition written), with the writing transaction's id; '*' after a truncate. The
# partition's text is Python's str() of its date ('None' without one), whatever the writer's DateStyle.
_NOTE_PARTITION_CHANGES = """create or replace function evident.note_partition_changes() returns trigger
language plpgsql as $$
declare
    partition_text text := format('coalesce(to_char(cast(%I as date), ''YYYY-MM-DD''), ''None'')', tg_argv[0]);
begin
    if tg_op = 'TRUNCATE' then
        insert into evident.partition_changes values (tg_table_schema || '.' || tg_table_name, '*', txid_current());
        return null;
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        execute format('insert into evident.partition_changes select distinct %L, %s, txid_current() from new_rows',
                       tg_table_schema || '.' || tg_table_name, partition_text);
    end if;
    if tg_op in ('DELETE', 'UPDATE') then
        execute format('insert into evident.partition_changes select distinct %L, %s, txid_current() from old_rows',
                       tg_table_schema || '.' || tg_table_name, partition_text);
    end if;
    return null;
end $$"""


class PostgresEngine(Engine):
    name = "postgres"
    AUTHORITATIVE = True
    SUPPORTS_ROLES = True
    WANTS_SECONDARY_INDEXES = True
    TRANSIENT_MESSAGES = (
        "server closed the connection unexpectedly", "connection refused", "could not connect to server",
        "connection to server at", "terminating connection due to administrator command",
        "the database system is shutting down", "the database system is starting up",
        "the database system is in recovery mode", "ssl connection has been closed unexpectedly",
        "could not receive data from server", "could not send data to server", "connection already closed",
        "consuming input failed", "deadlock detected", "could not serialize access",
        "canceling statement due to statement timeout", "sorry, too many clients already",
    )

    def __init__(self, dsn: str, application_name: str = "evident"):
        register_dsn(dsn)
        parse_dsn(dsn)  # a malformed DSN is a configuration error, before any connection attempt
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
        assert self._con is not None
        return self._con

    def execute(self, sql, params=()):
        self.con.execute(sql, list(params) or None)

    def executemany(self, sql, rows):
        if rows:
            with self.con.cursor() as cur:
                cur.executemany(sql, rows)

    def fetchall(self, sql, params=()):
        return self.con.execute(sql, list(params) or None).fetchall()

    def fetch_with_names(self, sql, params=()):
        with self.con.cursor() as cur:
            cur.execute(sql, list(params) or None)
            return [d.name for d in cur.description or ()], cur.fetchall()

    @contextlib.contextmanager
    def transaction(self):
        with self.con.transaction():
            yield self

    def bulk_insert(self, table, columns, rows, types=None):
        if not rows:
            return
        with self.con.cursor() as cur, cur.copy(f"copy {table} ({', '.join(columns)}) from stdin") as copy:
            for row in rows:
                copy.write_row(row)

    def create_stage(self, name, columns):
        cols = ", ".join(f"{column} {sql_type}" for column, sql_type in columns)
        self.execute(f"create temp table if not exists {name} ({cols}) on commit drop")

    def append_arrow(self, table, rows):
        # CSV written by Arrow (C++, no Python per row): every value quoted, so an empty string stays one and
        # only an unquoted empty field is NULL.
        text = io.BytesIO()
        pa_csv.write_csv(rows, text, pa_csv.WriteOptions(include_header=False, quoting_style="all_valid"))
        with self.con.cursor() as cur, \
                cur.copy(f"copy {table} ({', '.join(rows.schema.names)}) from stdin (format csv)") as copy:
            copy.write(text.getbuffer())

    @contextlib.contextmanager
    def arrow_relation(self, name, rows, columns):
        # A temporary table of the transaction, emptied after each use (COPY is Postgres' bulk path in).
        self.create_stage(name, columns)
        self.append_arrow(name, rows)
        try:
            yield name
        finally:
            self.execute(f"truncate {name}")

    def _run_insert_new(self, insert, params, relation, rows, line):
        # The rows not inserted, in the same statement: the insert returns the lines it wrote (a data-modifying
        # CTE), the select the others, so a chunk that met keys landed before is judged by those rows alone.
        skipped = self.fetchall(f"with inserted as ({insert} returning {line}) select {line} from {relation} "
                                f"where {line} not in (select {line} from inserted)", params)
        return Inserted(rows - len(skipped), [value for value, in skipped])

    def join_on_primary_key(self, table, alias, key, outer):
        # One probe of the key's index per outer row (the limit keeps the planner from a hash join, which would
        # read all of the table for them); the key is unique, so the limit changes no result.
        return (f"cross join lateral (select * from {table} {alias} where {alias}.{key} = {outer}.{key} limit 1) "
                f"{alias}")

    def close(self):
        if self._con is not None:
            self._con.close()

    def try_advisory_lock(self, key: int) -> bool:
        """A session-level advisory lock, held until this session closes."""
        return bool(self.fetchvalue("select pg_try_advisory_lock(%s)", [key]))

    def advisory_lock_holder(self, key: int) -> str:
        row = self.fetchone(
            "select a.application_name, a.pid, a.backend_start from pg_locks l join pg_stat_activity a using (pid) "
            "where l.locktype = 'advisory' and l.granted and l.objid = (%s::bigint & 4294967295)::oid limit 1",
            [key])
        return f"{row[0]!r} (backend pid {row[1]}, since {row[2]:%Y-%m-%d %H:%M:%S})" if row else "another session"

    def session_setup(self) -> None:
        # The canonical text of timestamps and dates is the engine's own cast to varchar: ISO on both engines
        # when Postgres' DateStyle is ISO (the default, pinned here).
        self.execute("set datestyle to 'ISO, YMD'")

    def hash48_sql(self, text_sql):
        return f"('x' || substr(md5({text_sql}), 1, 12))::bit(48)::bigint"

    RECORDS_CHANGES = True

    def reconciliation_ddl(self, schema, table, column, *, timestamp, index):
        # Triggers record the partitions every statement writes (evident.partition_changes), whoever runs it:
        # reading them is what lets reconciliation hash only what changed. Without statistics on the date of a
        # timestamp Postgres guesses one group per row and aggregates by partition in one process (a date
        # column's own statistics serve); the index lets one partition be read without a scan of the table.
        target = f'{schema}."{table}"'
        statements = [_NOTE_PARTITION_CHANGES]
        for event, tables in (("insert", "new table as new_rows"), ("update", "old table as old_rows new table as "
                              "new_rows"), ("delete", "old table as old_rows"), ("truncate", "")):
            referencing = f" referencing {tables}" if tables else ""
            statements.append(f'create or replace trigger "evident_{event}" after {event} on {target}{referencing} '
                              f"for each statement execute function evident.note_partition_changes('{column}')")
        if timestamp:
            statements.append(f'create statistics if not exists {schema}."{table}_{column}_date" '
                              f'on (cast("{column}" as date)) from {target}')
        if index:
            statements.append(f'create index if not exists "{table}_{column}" on {target} ("{column}")')
        return statements

    @contextlib.contextmanager
    def scan_settings(self):
        # The partition expression's group count is unknown to Postgres, which otherwise picks a serial
        # sort-based plan for these aggregate scans.
        with self.transaction():
            for setting in ("jit = off", "enable_sort = off", "work_mem = '256MB'", "parallel_setup_cost = 0",
                            "parallel_tuple_cost = 0"):
                self.execute(f"set local {setting}")
            yield

    def gx_environment(self):
        return {"EVIDENT_GX_POSTGRES_URL": sqlalchemy_url_from_dsn(self._dsn)}

    def dbt_environment(self):
        return dbt_env_from_dsn(self._dsn)

    @classmethod
    def classify(cls, exc: BaseException) -> ErrorKind | None:
        if not isinstance(exc, psycopg.Error):
            return None
        state = getattr(exc, "sqlstate", None)
        if state:
            if state in TRANSIENT_SQLSTATES:
                return "transient"
            if state in CONFIGURATION_SQLSTATES or state[:2] in CONFIGURATION_CLASSES:
                return "configuration"
            return "terminal"
        if isinstance(exc, psycopg.ProgrammingError) and "invalid" in str(exc).lower():
            return "configuration"  # an unparsable connection string
        if isinstance(exc, psycopg.OperationalError) and any(
                text in str(exc) for text in ("authentication failed", "does not exist", "no pg_hba.conf entry")):
            return "configuration"  # refused at connect for who or what was asked: wrong password, database, role
        # No SQLSTATE: the connection itself failed (refused, reset, server gone).
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            return "transient"
        return "terminal"


def dbt_env_from_dsn(dsn: str) -> dict[str, str]:
    """EVIDENT_PG_* variables for profiles/profiles.yml from a libpq URL or key=value DSN.

    Missing parts are left out (the profile's defaults apply). TLS settings and `options` go to libpq's own
    variables (PGSSLMODE, …), which dbt-postgres' driver honours. Raises ConfigError when the DSN is
    unparsable; the message never contains the DSN itself (it may hold a password).
    """
    register_dsn(dsn)
    parts = parse_dsn(dsn)
    env: dict[str, str] = {}
    for key, var in _PG_ENV_KEYS.items():
        value = parts.get(key)
        if value is None:
            continue
        if key == "host" and "," in value:
            raise ConfigError("EVIDENT_POSTGRES_DSN names several hosts; dbt needs exactly one")
        env[var] = value
    if "EVIDENT_PG_HOST" not in env and parts.get("hostaddr"):
        env["EVIDENT_PG_HOST"] = parts["hostaddr"]
    for key, var in _LIBPQ_ENV_KEYS.items():
        if parts.get(key):
            env[var] = parts[key]
    return env


def sqlalchemy_url_from_dsn(dsn: str) -> str:
    """A `postgresql+psycopg://` URL from a libpq URL or key=value DSN (the password is kept, for GX only)."""
    from sqlalchemy.engine import URL

    register_dsn(dsn)
    parts = parse_dsn(dsn)
    host = parts.pop("host", None)
    port = parts.pop("port", None)
    query: dict[str, str] = {}
    if host and ("," in host or host.startswith("/")):  # several hosts or a socket directory: libpq handles it
        query["host"] = host
        host = None
    if port and ("," in port or host is None and "host" in query):
        query["port"] = port
        port = None
    url = URL.create(
        "postgresql+psycopg",
        username=parts.pop("user", None),
        password=parts.pop("password", None),
        host=host,
        port=int(port) if port else None,
        database=parts.pop("dbname", None),
        query={**query, **parts},
    )
    return url.render_as_string(hide_password=False)
