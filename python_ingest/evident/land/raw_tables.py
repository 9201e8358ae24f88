"""The raw tables landing writes: `raw.app_events` and `raw.app_events_quarantine` (both engines)."""
from __future__ import annotations

from ..engines import Engine

RAW_COLUMNS = (
    "idempotency_key", "event_id", "user_id", "event_ts", "event_type", "value", "app_version",
    "properties", "payload_sha256", "batch_id", "land_seq", "source_file", "source_line",
    "contract_id", "landed_at",
)
QUARANTINE_COLUMNS = (
    "batch_id", "line_number", "source_file", "contract_id", "reason_code", "message", "raw_text",
    "idempotency_key", "quarantined_at",
)

RAW_DDL = [
    "create schema if not exists raw",
    """create table if not exists raw.app_events (
        idempotency_key varchar(64) primary key,
        event_id varchar not null,
        user_id bigint not null,
        event_ts timestamp not null,
        event_type varchar not null,
        value decimal(18,2),
        app_version varchar,
        properties varchar,
        payload_sha256 varchar(64) not null,
        batch_id varchar not null,
        land_seq bigint not null,
        source_file varchar not null,
        source_line integer not null,
        contract_id varchar not null,
        landed_at timestamp not null
    )""",
    """create table if not exists raw.app_events_quarantine (
        batch_id varchar not null,
        line_number integer not null,
        source_file varchar not null,
        contract_id varchar not null,
        reason_code varchar not null,
        message varchar not null,
        raw_text varchar,
        idempotency_key varchar(64),
        quarantined_at timestamp not null,
        primary key (batch_id, line_number)
    )""",
]
# The incremental models find new rows by land_seq and read touched users' history by user_id.
# (Only where the engine wants them: DuckDB's secondary indexes make its large deletes and commits far slower.)
RAW_INDEXES = [
    "create index if not exists app_events_land_seq on raw.app_events (land_seq)",
    "create index if not exists app_events_user_id on raw.app_events (user_id)",
]


def ensure_raw_tables(engine: Engine) -> None:
    with engine.transaction():
        for statement in RAW_DDL + (RAW_INDEXES if engine.WANTS_SECONDARY_INDEXES else []):
            engine.execute(statement)
