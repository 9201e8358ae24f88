"""The published tables: published.<model> for every model dbt's manifest declares published
(evident.build.manifest), with the columns and types of its enforced contract, audit columns left out."""
from __future__ import annotations

from evident.build.manifest import PublishedModel, quote
from evident.engines import Engine


def published_ddl(model: PublishedModel) -> str:
    cols = ", ".join(f"{quote(c.name)} {c.data_type}{' not null' if c.not_null else ''}" for c in model.columns)
    # No primary key: the gate proves the grain, and DuckDB's index checks reject a delete and re-insert of
    # one key inside a transaction.
    return f"create table {model.published} ({cols})"


def ensure_published_table(engine: Engine, model: PublishedModel) -> bool:
    """Create published.<model> if missing; re-create it (inside the caller's transaction, so readers see the
    old or the new table) when its columns no longer match the contract. True when it was (re)created."""
    expected = {c.name: c.data_type for c in model.columns}
    existing = engine.table_columns("published", model.name)
    recreated = existing != expected
    if recreated:
        if existing:
            engine.execute(f"drop table {model.published}")
        engine.execute(published_ddl(model))
    timestamp = expected[model.partition_by] == "timestamp"
    for statement in engine.reconciliation_ddl("published", model.name, model.partition_by, timestamp=timestamp,
                                                 index=True):
        engine.execute(statement)  # idempotent: older warehouses get them on their next publish
    return recreated


def published_tables(engine: Engine) -> list[str]:
    """The tables that exist in schema published on this engine (declared or not)."""
    return [r[0] for r in engine.fetchall(
        "select table_name from information_schema.tables where table_schema = 'published' order by table_name")]
