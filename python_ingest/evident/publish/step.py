"""`evident publish`: make published.* equal to the audited analytics.* models, atomically for readers.

What is published is what dbt's manifest declares (`meta.evident.publish`, evident.build.manifest): every such
model, with its contract's columns (audit columns left out). A model whose `publish` is removed is no longer
touched; its published table stays as it was (`evident status` reports it as no longer declared).

Write–audit–publish: dbt writes analytics.* (the audit area), the gate audits it, and only then does this step
change what dashboards read. Per engine, one transaction moves only what changed: rows of published.* that
are no longer in the audited mart are deleted by key, audited rows not yet published are inserted. Readers
see the old publication or the new one, never a mix (MVCC on both engines).
"""
from __future__ import annotations

from dataclasses import dataclass

from evident import faults
from evident.build.manifest import PublishedModel, published_models, quote
from evident.control.batches import advance, batches_in, utcnow
from evident.engines import Engine
from evident.errors import PublishRefused
from evident.pipeline.context import RunContext
from evident.publish.marts import ensure_published_table
from evident.reconcile.specs import model_spec
from evident.reconcile.stored import current_fingerprints
from evident.retry import with_retry


@dataclass
class Publication:
    engine: str
    table: str
    rows: int
    rows_inserted: int
    rows_deleted: int
    fingerprint: int


def _publish_model(engine: Engine, model: PublishedModel) -> tuple[int, int]:
    cols = ", ".join(quote(c.name) for c in model.columns)
    keys = ", ".join(quote(k) for k in model.key)
    target, audited = model.published, model.audited
    # Keys whose published row is gone from, or differs from, the audited mart.
    engine.execute(f"create temp table evident_stale as select {keys} from "
                   f"(select {cols} from {target} except select {cols} from {audited}) changed")
    deleted = engine.fetchvalue("select count(*) from evident_stale")
    match = " and ".join(f"p.{quote(k)} = s.{quote(k)}" for k in model.key)
    engine.execute(f"delete from {target} as p where exists (select 1 from evident_stale as s where {match})")
    engine.execute("drop table evident_stale")
    inserted = engine.fetchvalue(f"select count(*) from (select {cols} from {audited} except "
                                 f"select {cols} from {target}) fresh")
    engine.execute(f"insert into {target} ({cols}) select {cols} from {audited} except select {cols} from {target}")
    return inserted, deleted


def publish_engine(engine: Engine, run_id: str, gate_run_id: str | None,
                   models: dict[str, PublishedModel]) -> list[Publication]:
    publications = []
    with engine.transaction():
        engine.execute("create schema if not exists published")
        for model in models.values():
            ensure_published_table(engine, model)
            inserted, deleted = _publish_model(engine, model)
            faults.point(f"publish.{engine.name}.{model.name}")
            # The publication's fingerprint from the partitions' (evident.reconcile.stored): only those written
            # to here are hashed, and reconciliation finds them up to date.
            view, _ = current_fingerprints(engine, model_spec(model), run_id)
            rows, fp = sum(p.rows for p in view.values()), sum(p.row_hash_sum or 0 for p in view.values())
            publications.append(Publication(engine.name, model.name, rows, inserted, deleted, fp))
            engine.execute(
                "insert into evident.publications (run_id, engine, table_name, row_count, rows_inserted, "
                "rows_deleted, fingerprint, gate_run_id, published_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [run_id, engine.name, model.name, rows, inserted, deleted, str(fp), gate_run_id, utcnow()])
    return publications


def publish(ctx: RunContext, gate_run_ids: dict[str, str]) -> list[Publication]:
    """Publish on every engine whose gate passed; `gate_run_ids` maps engine → the passing gate's run id."""
    missing = [e.name for e in ctx.engines if e.name not in gate_run_ids]
    if missing:
        raise PublishRefused(f"the gate has not passed for the current build on {', '.join(missing)}; "
                             "published.* is unchanged (run `evident gate` first)")
    models = published_models(ctx.settings.project)
    publications: list[Publication] = []
    for engine in ctx.engines:
        gated = batches_in(engine, "gated")
        publications += with_retry(lambda: publish_engine(engine, ctx.run_id, gate_run_ids[engine.name], models),
                                   what=f"{engine.name}: publishing")
        advance(engine, gated, "gated", "published", ctx.run_id)
    ctx.detail["publish"] = [p.__dict__ for p in publications]
    return publications
