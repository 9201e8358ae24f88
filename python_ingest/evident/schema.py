"""DDL of the tables Evident owns, written once in the SQL both engines accept (see docs/data-model.md)."""

RAW_COLUMNS = (
    "idempotency_key", "event_id", "user_id", "event_ts", "event_type", "value", "app_version",
    "properties", "payload_sha256", "batch_id", "land_seq", "source_file", "source_line",
    "contract_id", "landed_at",
)
QUARANTINE_COLUMNS = (
    "batch_id", "line_number", "source_file", "contract_id", "reason_code", "message", "raw_text",
    "idempotency_key", "quarantined_at",
)

DDL = [
    "create schema if not exists raw",
    "create schema if not exists evident",
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
    """create table if not exists evident.batches (
        batch_id varchar primary key,
        source_file varchar not null,
        source_sha256 varchar(64) not null,
        source_bytes bigint not null,
        contract_id varchar not null,
        code_revision varchar not null,
        state varchar not null,
        land_seq bigint,
        rows_in bigint,
        rows_landed bigint,
        rows_quarantined bigint,
        rows_duplicate bigint,
        landed_checksum varchar(64),
        min_event_ts timestamp,
        max_event_ts timestamp,
        event_dates varchar,
        run_id varchar not null,
        failure_reason varchar,
        created_at timestamp not null,
        updated_at timestamp not null
    )""",
    """create table if not exists evident.batch_transitions (
        batch_id varchar not null,
        from_state varchar,
        to_state varchar not null,
        transitioned_at timestamp not null,
        run_id varchar not null,
        reason varchar
    )""",
    """create table if not exists evident.checkpoints (
        source_file varchar primary key,
        source_sha256 varchar(64) not null,
        batch_id varchar not null,
        land_seq bigint not null,
        landed_at timestamp not null
    )""",
    """create table if not exists evident.runs (
        run_id varchar primary key,
        command varchar not null,
        code_revision varchar not null,
        started_at timestamp not null,
        finished_at timestamp,
        status varchar not null,
        detail varchar
    )""",
    """create table if not exists evident.builds (
        run_id varchar not null,
        engine varchar not null,
        full_refresh boolean not null,
        success boolean not null,
        elapsed_s double precision,
        batch_ids varchar,
        failures varchar,
        artifacts_dir varchar,
        built_at timestamp not null
    )""",
]
