"""Test helpers for the dbt project: a raw.app_events table in a DuckDB file or a Postgres database (DDL from
docs/data-model.md), rows landed the way the loader lands them (one row per idempotency key, first delivery
wins, a land_seq per batch), and the marts read back as sorted lists of plain Python values.

Independent of the loader on purpose: the idempotency key is computed here from DESIGN.md.
"""
from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from evident.land.raw_tables import raw_ddl

# raw schema and raw.app_events exactly as the loader creates them
RAW_DDL = raw_ddl()  # every source's raw tables (the project's dbt sources read them all)

RAW_COLUMNS = (
    "idempotency_key", "event_id", "user_id", "event_ts", "event_type", "value", "app_version", "properties",
    "payload_sha256", "batch_id", "land_seq", "source_file", "source_line", "contract_id", "landed_at",
)

SESSION_COLUMNS = (
    "session_id", "user_id", "session_start", "session_end", "event_count", "has_purchase", "revenue",
)
METRIC_COLUMNS = ("metric_date", "metric_name", "metric_value")

CONTRACT_ID = "app_events@1:test"
LANDED_AT = datetime(2030, 1, 1)  # metadata only; no model may depend on it


@dataclass(frozen=True)
class Event:
    """One delivered event: naive datetimes are UTC."""

    event_id: str
    user_id: int
    event_ts: datetime
    event_type: str
    value: Decimal | None = None

    @property
    def key(self) -> str:
        return idempotency_key(self.user_id, self.event_ts, self.event_type, self.event_id)


def utc_text(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def idempotency_key(user_id: int, event_ts: datetime, event_type: str, event_id: str) -> str:
    """DESIGN.md: SHA-256 hex of user_id ␟ event_ts ␟ event_type ␟ event_id, joined with U+001F."""
    text = "\x1f".join((str(user_id), utc_text(event_ts), event_type, event_id))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def raw_rows(events: Iterable[Event], *, land_seq: int, batch_id: str | None = None) -> list[tuple]:
    """Rows for raw.app_events, one per distinct key in `events` (the first delivery of a key wins)."""
    batch_id = batch_id or f"batch-{land_seq:04d}"
    rows: dict[str, tuple] = {}
    for line, e in enumerate(events, start=1):
        if e.key in rows:
            continue
        value = None if e.value is None else Decimal(e.value).quantize(Decimal("0.01"))
        fields = (e.event_id, e.user_id, utc_text(e.event_ts), e.event_type, str(value))
        payload = hashlib.sha256(repr(fields).encode()).hexdigest()
        rows[e.key] = (
            e.key, e.event_id, e.user_id, e.event_ts, e.event_type, value, "1.0.0", None, payload,
            batch_id, land_seq, f"{batch_id}.jsonl", line, CONTRACT_ID, LANDED_AT,
        )
    return list(rows.values())


# ------------------------------------------------------------------------------------------ dbt

_TARGET_DIRS: dict[str, str] = {}


def dbt_target_dir(target: str) -> str:
    """A dbt --target-path private to this test process (one per target, kept for the session so dbt's
    partial-parse cache is reused), so tests never share target/<target> with a concurrent `evident build`."""
    if target not in _TARGET_DIRS:
        _TARGET_DIRS[target] = tempfile.mkdtemp(prefix=f"evident-dbt-{target}-")
        atexit.register(shutil.rmtree, _TARGET_DIRS[target], ignore_errors=True)
    return _TARGET_DIRS[target]


def dbt_build(target: str, *, duckdb_path, pg_dsn: str | None = None, **options):
    """evident.dbt_runner.run_dbt_build with this process's private target dir."""
    from evident.build.dbt import run_dbt_build

    return run_dbt_build(
        target, duckdb_path=duckdb_path, pg_dsn=pg_dsn, target_dir=dbt_target_dir(target), **options
    )


# ------------------------------------------------------------------------------------------ warehouses


class RawWarehouse:
    """raw.app_events in one engine, plus reading the marts back."""

    engine: str

    def create_raw(self) -> None:
        for statement in RAW_DDL:
            self._execute(statement)

    def land(self, events: Sequence[Event], *, land_seq: int, batch_id: str | None = None) -> int:
        """Land a batch like the loader does: keys already present are skipped. Returns rows landed."""
        rows = raw_rows(events, land_seq=land_seq, batch_id=batch_id)
        before = self.scalar("select count(*) from raw.app_events")
        self._insert_ignoring_existing(rows)
        return self.scalar("select count(*) from raw.app_events") - before

    def sessions(self, *, with_watermark: bool = False) -> list[tuple]:
        columns = SESSION_COLUMNS + (("last_land_seq",) if with_watermark else ())
        rows = self.query(f"select {', '.join(columns)} from analytics.fct_sessions")
        return sorted(normalise_session(r) for r in rows)

    def daily_metrics(self, *, with_watermark: bool = False) -> list[tuple]:
        columns = METRIC_COLUMNS + (("last_land_seq",) if with_watermark else ())
        rows = self.query(f"select {', '.join(columns)} from analytics.fct_daily_metrics")
        return sorted(normalise_metric(r) for r in rows)

    def sessionised_events(self) -> list[tuple]:
        """int_sessionised_events as tests/reference_marts.reference_sessionised_events shapes it."""
        rows = self.query(
            "select idempotency_key, user_id, event_ts, is_session_start, session_start, previous_land_seq, land_seq "
            "from analytics.int_sessionised_events"
        )
        return sorted(
            (str(k), int(u), _as_datetime(ts), bool(start), _as_datetime(session_start),
             None if previous is None else int(previous), int(land_seq))
            for k, u, ts, start, session_start, previous, land_seq in rows
        )

    def marts(self, *, with_watermark: bool = False) -> tuple[list[tuple], list[tuple]]:
        return self.sessions(with_watermark=with_watermark), self.daily_metrics(with_watermark=with_watermark)

    def scalar(self, sql: str):
        return self.query(sql)[0][0]

    # engine-specific
    def _connect(self):
        raise NotImplementedError

    def query(self, sql: str) -> list[tuple]:
        with self._connect() as conn:
            return conn.execute(sql).fetchall()

    def _execute(self, sql: str) -> None:
        with self._connect() as conn:
            conn.execute(sql)

    def _insert_ignoring_existing(self, rows: list[tuple]) -> None:
        raise NotImplementedError


class DuckDBRawWarehouse(RawWarehouse):
    """A DuckDB file. Connections use the default configuration only (the same one dbt-duckdb uses), and each
    operation opens and closes its own, so the file is free for dbt between calls."""

    engine = "duckdb"

    def __init__(self, path) -> None:
        self.path = str(path)

    def _connect(self):
        import duckdb

        return duckdb.connect(self.path)

    def _insert_ignoring_existing(self, rows: list[tuple]) -> None:
        if not rows:
            return
        placeholders = ", ".join("?" for _ in RAW_COLUMNS)
        with self._connect() as conn:
            conn.execute("begin")
            conn.executemany(
                f"insert into raw.app_events ({', '.join(RAW_COLUMNS)}) values ({placeholders}) "
                "on conflict (idempotency_key) do nothing",
                rows,
            )
            conn.execute("commit")


class PostgresRawWarehouse(RawWarehouse):
    engine = "postgres"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def _connect(self):
        import psycopg

        return psycopg.connect(self.dsn, connect_timeout=10)

    def _insert_ignoring_existing(self, rows: list[tuple]) -> None:
        if not rows:
            return
        placeholders = ", ".join("%s" for _ in RAW_COLUMNS)
        with self._connect() as conn, conn.cursor() as cur:
            cur.executemany(
                f"insert into raw.app_events ({', '.join(RAW_COLUMNS)}) values ({placeholders}) "
                "on conflict (idempotency_key) do nothing",
                rows,
            )


# ------------------------------------------------------------------------------------------ normalising


def _as_datetime(value) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    raise TypeError(f"expected a timestamp, got {value!r}")


def _as_date(value) -> date:
    if isinstance(value, datetime):
        raise TypeError(f"expected a date, got a timestamp {value!r}")
    if isinstance(value, date):
        return value
    raise TypeError(f"expected a date, got {value!r}")


def normalise_session(row: Sequence) -> tuple:
    session_id, user_id, start, end, count, has_purchase, revenue, *rest = row
    out = (
        str(session_id), int(user_id), _as_datetime(start), _as_datetime(end), int(count), bool(has_purchase),
        Decimal(revenue).quantize(Decimal("0.01")),
    )
    return out + tuple(int(x) for x in rest)


def normalise_metric(row: Sequence) -> tuple:
    metric_date, name, value, *rest = row
    out = (_as_date(metric_date), str(name), Decimal(value).quantize(Decimal("0.000001")))
    return out + tuple(int(x) for x in rest)
