"""The control plane's tables (`evident.*`): every one of them is created here, in the SQL both engines accept.

See docs/data-model.md for their columns. The raw tables belong to landing (evident.land.raw_tables).
"""
from __future__ import annotations

from ..engines import Engine

DDL = [
    "create schema if not exists evident",
    """create table if not exists evident.batches (
        batch_id varchar primary key,
        source varchar,
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
    """create table if not exists evident.gate_results (
    run_id varchar not null,
    engine varchar not null,
    suite varchar not null,
    expectation_type varchar not null,
    column_name varchar,
    success boolean not null,
    observed_value varchar,
    expected varchar,
    failing_sample varchar,
    batch_ids varchar,
    validated_at timestamp not null
)""",
    """create table if not exists evident.publications (
    run_id varchar not null, engine varchar not null, table_name varchar not null, row_count bigint not null,
    rows_inserted bigint not null, rows_deleted bigint not null, fingerprint varchar not null,
    gate_run_id varchar, published_at timestamp not null)""",
    """create table if not exists evident.reconciliations (
    run_id varchar not null, table_name varchar not null, partition varchar not null,
    duckdb_rows bigint not null, postgres_rows bigint not null, status varchar not null,
    differing_keys varchar, threshold decimal(38,6) not null, max_measure_delta decimal(38,6) not null,
    within_threshold boolean not null, checked_at timestamp not null)""",
    # What reconciliation last hashed per table and partition in this engine (evident.reconcile.stored): row
    # count, exact measure sums (JSON list), sum of row hashes (equal across engines for equal rows) and, where
    # the engine does not record changes, its change marker of the rows.
    """create table if not exists evident.partition_fingerprints (
    table_name varchar not null, partition varchar not null, row_count bigint not null,
    measure_sums varchar not null, row_hash_sum varchar not null, change_marker varchar not null,
    run_id varchar not null, fingerprinted_at timestamp not null)""",
    # Partitions written to since reconciliation last hashed them, per writing transaction (txid), where the
    # engine records changes (Postgres: triggers on raw and published tables); '*' = every partition.
    """create table if not exists evident.partition_changes (
    table_name varchar not null, partition varchar not null, txid bigint not null)""",
    # `evident run --full-refresh`: the incremental marts against the full refresh (evident.build.drift). Per
    # run, engine and model one row with partition '*' (status drift | no_drift | not_compared), and one per
    # drifting partition; keys_* count the differing keys by kind, detail (JSON) lists them with the columns
    # that differ and both values. Created where missing, so older warehouses get it on their next command.
    """create table if not exists evident.drift_reports (
    run_id varchar not null, engine varchar not null, model varchar not null, partition varchar not null,
    status varchar not null, incremental_rows bigint not null, full_refresh_rows bigint not null,
    keys_missing bigint not null, keys_extra bigint not null, keys_different bigint not null,
    keys_duplicated bigint not null, detail varchar, checked_at timestamp not null)""",
]


# Columns added to a table after warehouses already held it (applied where missing, idempotent).
MIGRATIONS = [
    # any source (contracts per source): each batch names the source it lands in
    "alter table evident.batches add column if not exists source varchar",
    # unit tests run when the code they test changed: the code (build.dbt.code_fingerprint) a build passed them on
    "alter table evident.builds add column if not exists unit_tested_code varchar",
]


def ensure_control_plane(engine: Engine) -> None:
    """Create the `evident` schema and its tables where missing, and bring older ones up to date
    (idempotent; one transaction)."""
    with engine.transaction():
        for statement in DDL + MIGRATIONS:
            engine.execute(statement)
