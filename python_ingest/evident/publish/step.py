"""`evident publish`: make published.* equal to the audited analytics.* marts, atomically for readers.

Write–audit–publish: dbt writes analytics.* (the audit area), the gate audits it, and only then does this step
change what dashboards read. Per engine, one transaction moves only what changed: rows of published.* that
are no longer in the audited mart are deleted by key, audited rows not yet published are inserted. Readers
see the old publication or the new one, never a mix (MVCC on both engines).
"""
from __future__ import annotations

from dataclasses import dataclass

from evident import faults
from evident.control.batches import advance, batches_in, utcnow
from evident.engines import Engine
from evident.errors import PublishRefused
from evident.fingerprint import fingerprint
from evident.pipeline.context import RunContext
from evident.publish.marts import MARTS, Mart, published_ddl
from evident.retry import with_retry


@dataclass
class Publication:
    engine: str
    table: str
    rows: int
    rows_inserted: int
    rows_deleted: int
    fingerprint: int


def _publish_mart(engine: Engine, mart: Mart) -> tuple[int, int]:
    cols = ", ".join(c.name for c in mart.columns)
    keys = ", ".join(mart.key)
    target, audited = f"published.{mart.name}", f"analytics.{mart.name}"
    # Keys whose published row is gone from, or differs from, the audited mart.
    engine.execute(f"create temp table evident_stale as select {keys} from "
                   f"(select {cols} from {target} except select {cols} from {audited}) changed")
    deleted = engine.fetchvalue("select count(*) from evident_stale")
    match = " and ".join(f"p.{k} = s.{k}" for k in mart.key)
    engine.execute(f"delete from {target} as p where exists (select 1 from evident_stale as s where {match})")
    engine.execute("drop table evident_stale")
    inserted = engine.fetchvalue(f"select count(*) from (select {cols} from {audited} except "
                                 f"select {cols} from {target}) fresh")
    engine.execute(f"insert into {target} ({cols}) select {cols} from {audited} except select {cols} from {target}")
    return inserted, deleted


def publish_engine(engine: Engine, run_id: str, gate_run_id: str | None) -> list[Publication]:
    publications = []
    with engine.transaction():
        engine.execute("create schema if not exists published")
        for mart in MARTS:
            engine.execute(published_ddl(mart))
            inserted, deleted = _publish_mart(engine, mart)
            faults.point(f"publish.{engine.name}.{mart.name}")
            rows, fp = fingerprint(engine, f"published.{mart.name}", list(mart.columns))
            publications.append(Publication(engine.name, mart.name, rows, inserted, deleted, fp))
            engine.execute(
                "insert into evident.publications (run_id, engine, table_name, row_count, rows_inserted, "
                "rows_deleted, fingerprint, gate_run_id, published_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [run_id, engine.name, mart.name, rows, inserted, deleted, str(fp), gate_run_id, utcnow()])
    return publications


def publish(ctx: RunContext, gate_run_ids: dict[str, str]) -> list[Publication]:
    """Publish on every engine whose gate passed; `gate_run_ids` maps engine → the passing gate's run id."""
    missing = [e.name for e in ctx.engines if e.name not in gate_run_ids]
    if missing:
        raise PublishRefused(f"the gate has not passed for the current build on {', '.join(missing)}; "
                             "published.* is unchanged (run `evident gate` first)")
    publications: list[Publication] = []
    for engine in ctx.engines:
        gated = batches_in(engine, "gated")
        publications += with_retry(lambda: publish_engine(engine, ctx.run_id, gate_run_ids[engine.name]),
                                   what=f"{engine.name}: publishing")
        advance(engine, gated, "gated", "published", ctx.run_id)
    ctx.detail["publish"] = [p.__dict__ for p in publications]
    return publications
