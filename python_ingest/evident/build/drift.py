"""Incremental drift: what a full refresh finds wrong in the incrementally maintained marts.

A full refresh rebuilds every mart from all raw rows, which is also what the incremental models must equal
(DESIGN: "after any sequence of incremental runs the marts equal what a full refresh over the same raw rows
produces"). Rebuilding in place would silently overwrite any difference, so `evident run --full-refresh` audits
it first, per engine and per published model (dbt's manifest: meta.evident key, partition_by, measures):

1. `keep_incremental` (before the full build): if batches landed since the last build, a plain incremental
   `dbt run` (models only, no tests) brings the incremental marts up to the same raw rows the full refresh
   will read; then each published model's audited table analytics.<model> (its published columns) is copied
   beside it into schema `analytics_incremental`.
2. dbt builds the full refresh where it always builds, in analytics.* (`evident build --full-refresh`).
3. `compare_drift` (after the build): analytics.<model> — the full refresh — against the copy, inside the
   engine, row by row: per partition the row count, the exact sums of the measures and the sum of per-row
   hashes of the canonical row text (evident.fingerprint, as reconciliation does across engines); in the
   partitions that differ, EXCEPT ALL in both directions gives the differing rows, grouped by the key's
   canonical text (reconcile.sql.key_text_sql) into keys: `missing` (in the full refresh, not in the
   incremental mart), `extra` (in the incremental mart only), `different` (with the columns that differ and
   both values) or `duplicated` (a different number of rows per key). The report goes to
   evident.drift_reports on every engine. The copy of a model without drift is dropped; the copy of a model
   with drift stays in analytics_incremental.<model> as evidence until the next full refresh.

Why the incremental marts are copied aside rather than the full refresh built aside (a second schema through
generate_schema_name, then swapped in): both engines run CREATE TABLE AS and DROP TABLE the same way, while a
swap would need ALTER SCHEMA RENAME (not implemented in DuckDB) or ALTER TABLE SET SCHEMA (Postgres only), and a
full refresh built elsewhere and copied back would lose what dbt creates with each table (Postgres indexes, the
contract's NOT NULL constraints). dbt keeps building in its one schema with its one working folder (and its
partial-parse cache), so the published result is exactly a clean full refresh — every incremental model,
published or not, rebuilt by dbt itself. The copy costs one scan of each published mart; marts are aggregates
(sessions, daily rows), far smaller than the raw events the full refresh reads anyway.

A model is not compared (and the report says why) when it had no incremental table yet (a first build), when
the incremental catch-up failed (e.g. a model whose columns changed: `on_schema_change: fail` refuses the
incremental run, which is what the full refresh is for), or when its published columns changed with the full
refresh. That is a note, not drift.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from evident.build.dbt import DbtOutcome, run_dbt_build
from evident.build.manifest import PublishedModel, published_models, quote
from evident.control.batches import batches_in, utcnow
from evident.engines import Engine
from evident.errors import TransientToolError
from evident.fingerprint import column_text_sql, grouped_fingerprints
from evident.reconcile.specs import TableSpec
from evident.reconcile.sql import key_text_sql, partition_sql
from evident.retry import with_retry

log = logging.getLogger(__name__)

SIDE_SCHEMA = "analytics_incremental"  # the incremental marts as they were, beside the full refresh
MAX_KEYS = 50  # differing keys kept with their columns and values per (engine, model, partition)
MAX_DETAILED_PARTITIONS = 20  # partitions whose keys are listed per (engine, model); the rest are counted
NULL_TEXT = "\x01"  # evident.fingerprint's NULL mark
NULL_PARTITION = "NULL"  # the partition of rows whose partition_by column is NULL
KINDS = ("missing", "extra", "different", "duplicated")


@dataclass
class DriftKey:
    key: str  # the key columns' canonical texts, joined by " | " (NULL for a NULL)
    kind: str  # missing | extra | different | duplicated (the incremental mart relative to the full refresh)
    columns: list[str] = field(default_factory=list)  # for `different`: the columns that differ
    incremental: dict | None = None  # the differing columns' canonical text in the incremental mart (None = NULL)
    full_refresh: dict | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "kind": self.kind}
        if self.columns:
            out.update(columns=self.columns, incremental=self.incremental, full_refresh=self.full_refresh)
        return out


@dataclass
class PartitionDrift:
    engine: str
    model: str
    partition: str  # the UTC date of the model's partition_by column
    incremental_rows: int
    full_refresh_rows: int
    counts: dict[str, int]  # differing keys per kind (all of them, also those not listed)
    keys: list[DriftKey] = field(default_factory=list)  # the first MAX_KEYS (by key text)
    incremental_sums: dict = field(default_factory=dict)  # exact sums of the measures
    full_refresh_sums: dict = field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        return sum(self.counts.values()) > len(self.keys)


@dataclass
class ModelAudit:
    """One published model on one engine: compared (with its drifting partitions) or not, and why."""
    engine: str
    model: str
    compared: bool
    incremental_rows: int = 0
    full_refresh_rows: int = 0
    partitions: list[PartitionDrift] = field(default_factory=list)
    note: str = ""  # why it was not compared

    @property
    def drift(self) -> bool:
        return bool(self.partitions)

    @property
    def status(self) -> str:
        return "not_compared" if not self.compared else "drift" if self.drift else "no_drift"

    def counts(self) -> dict[str, int]:
        return {k: sum(p.counts.get(k, 0) for p in self.partitions) for k in KINDS}


@dataclass
class Kept:
    """What keep_incremental left beside the marts: per engine, the models copied, and notes on the others."""
    models: dict[str, list[str]] = field(default_factory=dict)  # engine → models copied to SIDE_SCHEMA
    notes: dict[str, dict[str, str]] = field(default_factory=dict)  # engine → model → why it was not copied
    caught_up: dict[str, int] = field(default_factory=dict)  # engine → landed batches the catch-up built


@dataclass
class DriftReport:
    run_id: str
    audits: list[ModelAudit] = field(default_factory=list)
    caught_up: dict[str, int] = field(default_factory=dict)  # engine → landed batches built incrementally first
    elapsed_s: float = 0.0
    checked_at: Any = field(default_factory=utcnow)

    @property
    def drift(self) -> bool:
        return any(a.drift for a in self.audits)

    @property
    def status(self) -> str:
        if self.drift:
            return "drift"
        return "no_drift" if any(a.compared for a in self.audits) else "not_compared"

    def summary(self) -> dict[str, Any]:
        return {"status": self.status, "drift": self.drift, "elapsed_s": self.elapsed_s, "caught_up": self.caught_up,
                "models": [{"engine": a.engine, "model": a.model, "status": a.status,
                            "incremental_rows": a.incremental_rows, "full_refresh_rows": a.full_refresh_rows,
                            "partitions": [p.partition for p in a.partitions][:20], "keys": a.counts(),
                            **({"note": a.note} if a.note else {})} for a in self.audits]}

    def rows(self) -> list[dict[str, Any]]:
        """What evident.drift_reports stores: one row per (engine, model) with partition '*' (its verdict), and
        one per drifting partition with its keys."""
        rows = []
        for a in self.audits:
            verdict: dict[str, Any] = {"note": a.note} if a.note else {"keys": a.counts()}
            rows.append({"run_id": self.run_id, "engine": a.engine, "model": a.model, "partition": "*",
                         "status": a.status, "incremental_rows": a.incremental_rows,
                         "full_refresh_rows": a.full_refresh_rows, **_counts_columns(a.counts()),
                         "detail": json.dumps(verdict, ensure_ascii=False), "checked_at": self.checked_at})
            for p in a.partitions:
                detail: dict[str, Any] = {"keys": [k.as_dict() for k in p.keys], "truncated": p.truncated,
                          "incremental_sums": p.incremental_sums, "full_refresh_sums": p.full_refresh_sums}
                rows.append({"run_id": self.run_id, "engine": a.engine, "model": a.model, "partition": p.partition,
                             "status": "drift", "incremental_rows": p.incremental_rows,
                             "full_refresh_rows": p.full_refresh_rows, **_counts_columns(p.counts),
                             "detail": json.dumps(detail, ensure_ascii=False, default=str),
                             "checked_at": self.checked_at})
        return rows

    def render(self) -> str:
        """The quiet line when nothing drifted; otherwise a table of the drifting keys."""
        compared = [a for a in self.audits if a.compared]
        engines = sorted({a.engine for a in self.audits})
        notes = [f"  not compared [{a.engine}] {a.model}: {a.note}" for a in self.audits if not a.compared]
        caught_up = ("new batches built incrementally first: "
                     + ", ".join(f"{e} {n}" for e, n in sorted(self.caught_up.items()))) if self.caught_up else ""
        if not self.drift:
            head = (f"drift: none — the incremental marts equal the full refresh ({len({a.model for a in compared})} "
                    f"model(s) on {', '.join(engines)}" + (f"; {caught_up}" if caught_up else "") + ")"
                    if compared else "drift: nothing to compare")
            return "\n".join([head, *notes])
        lines = [f"drift: {caught_up}"] if caught_up else []
        for a in self.audits:
            if a.drift:
                counts = ", ".join(f"{n} {k}" for k, n in a.counts().items() if n)
                lines.append(f"DRIFT [{a.engine}] {a.model}: {len(a.partitions)} partition(s), keys {counts} "
                             f"(incremental {a.incremental_rows} rows, full refresh {a.full_refresh_rows}); the "
                             f"incremental table is kept in {SIDE_SCHEMA}.{a.model}")
        header = ("engine", "model", "partition", "key", "kind", "columns: incremental → full refresh")
        body = []
        for a in self.audits:
            for p in a.partitions:
                for k in p.keys:
                    values = "; ".join(f"{c}: {_show((k.incremental or {}).get(c))} → "
                                       f"{_show((k.full_refresh or {}).get(c))}" for c in k.columns)
                    body.append((a.engine, a.model, p.partition, k.key, k.kind, values))
                if p.truncated:
                    body.append((a.engine, a.model, p.partition, "…",
                                 f"{sum(p.counts.values()) - len(p.keys)} more", ""))
        widths = [min(48, max(len(h), *(len(r[i]) for r in body))) for i, h in enumerate(header[:-1])]

        def fmt(row: tuple) -> str:
            return "  ".join(_cut(v, w).ljust(w) for v, w in zip(row[:-1], widths)) + "  " + row[-1]

        lines += [fmt(header), fmt(tuple("-" * w for w in widths) + ("-" * 16,)), *(fmt(r) for r in body)]
        return "\n".join([*lines, *notes])


def _counts_columns(counts: dict[str, int]) -> dict[str, int]:
    return {f"keys_{k}": counts.get(k, 0) for k in KINDS}


def _show(value: str | None) -> str:
    return "NULL" if value is None else repr(value)


def _cut(value: str, width: int) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


# ------------------------------------------------------------------------------------------ before the build


def keep_incremental(ctx) -> Kept:
    """Bring the incremental marts up to this run's raw rows and copy them beside (see the module docstring)."""
    models = published_models(ctx.settings.project)
    kept = Kept()
    for engine in ctx.engines:
        kept.models[engine.name], kept.notes[engine.name] = [], {}
        present = [m for m in models.values() if _exists(engine, m)]
        for m in models.values():
            if m not in present:
                kept.notes[engine.name][m.name] = "no incremental table yet (a first build)"
        landed = with_retry(lambda: batches_in(engine, "landed"), what=f"{engine.name}: listing landed batches")
        if present and landed:
            outcome = _catch_up(ctx, engine)
            if not outcome.success:
                why = "; ".join(" ".join(f.message.split())[:300] for f in outcome.failures[:3]) or "failed"
                log.warning("%s: the incremental run before the full refresh failed, so drift is not audited: %s",
                            engine.name, why)
                for m in present:
                    kept.notes[engine.name][m.name] = ("the incremental run that would bring it up to date "
                                                       f"failed ({why})")
                present = []
            else:
                kept.caught_up[engine.name] = len(landed)
        with_retry(lambda: _copy_aside(engine, present), what=f"{engine.name}: keeping the incremental marts")
        kept.models[engine.name] = [m.name for m in present]
    return kept


def _exists(engine: Engine, model: PublishedModel) -> bool:
    return with_retry(lambda: engine.table_exists(model.schema, model.alias),
                      what=f"{engine.name}: looking up {model.audited}")


def _catch_up(ctx, engine: Engine) -> DbtOutcome:
    """An incremental `dbt run` (models only: a failing data test must not stop the full refresh that follows)."""
    engine.release()  # dbt opens the database in this process its own way

    def attempt() -> DbtOutcome:
        outcome = run_dbt_build(engine.name, duckdb_path=ctx.settings.duckdb_path, pg_dsn=ctx.settings.postgres_dsn,
                                command="run", project=ctx.settings.project)
        transient = [f for f in outcome.failures if engine.is_transient_message(f.message)]
        if transient:
            raise TransientToolError(f"dbt: {transient[0].message}")
        return outcome

    return with_retry(attempt, what=f"{engine.name}: dbt run (incremental, before the full refresh)")


def _copy_aside(engine: Engine, models: Sequence[PublishedModel]) -> None:
    """One transaction: every table left in SIDE_SCHEMA by an earlier full refresh dropped, the published
    columns of each model's audited table copied there."""
    with engine.transaction():
        engine.execute(f"create schema if not exists {SIDE_SCHEMA}")
        for (name,) in engine.fetchall("select table_name from information_schema.tables where table_schema = %s",
                                       [SIDE_SCHEMA]):
            engine.execute(f"drop table {SIDE_SCHEMA}.{quote(name)}")
        for m in models:
            cols = ", ".join(quote(c.name) for c in m.columns)
            engine.execute(f"create table {_side(m)} as select {cols} from {m.audited}")


def _side(model: PublishedModel) -> str:
    return f"{SIDE_SCHEMA}.{quote(model.name)}"


# ------------------------------------------------------------------------------------------ after the build


def compare_drift(ctx, kept: Kept) -> DriftReport:
    """The full refresh (analytics.*) against the incremental marts kept beside it, per engine and model; the
    report is stored in evident.drift_reports on every engine."""
    started = time.perf_counter()
    models = published_models(ctx.settings.project)
    report = DriftReport(ctx.run_id, caught_up=dict(kept.caught_up))
    for engine in ctx.engines:
        engine.session_setup()
        notes = kept.notes.get(engine.name, {})
        for name, model in models.items():
            if name in kept.models.get(engine.name, []):
                audit = _compare_with_retry(engine, model)
            else:
                audit = ModelAudit(engine.name, name, False, note=notes.get(name, "not kept before the build"))
            report.audits.append(audit)
        clean = [m for m in models.values() if any(a.engine == engine.name and a.model == m.name and not a.drift
                                                   for a in report.audits)]
        with_retry(lambda: _drop_side(engine, clean), what=f"{engine.name}: dropping the compared copies")
    report.elapsed_s = round(time.perf_counter() - started, 3)
    with_retry(lambda: store_drift(ctx.engines, report), what="storing the drift report")
    for audit in report.audits:
        if audit.drift:
            log.warning("incremental drift [%s] %s: %s partition(s), keys %s", audit.engine, audit.model,
                        len(audit.partitions), audit.counts())
    ctx.detail["drift"] = report.summary()
    return report


def _compare_with_retry(engine: Engine, model: PublishedModel) -> ModelAudit:
    return with_retry(lambda: compare_model(engine, model, _side(model), model.audited),
                      what=f"{engine.name}: comparing {model.name} with its full refresh")


def _drop_side(engine: Engine, models: Sequence[PublishedModel]) -> None:
    with engine.transaction():
        for m in models:
            engine.execute(f"drop table if exists {_side(m)}")


def compare_model(engine: Engine, model: PublishedModel, incremental: str, full_refresh: str,
                  max_keys: int = MAX_KEYS) -> ModelAudit:
    """`incremental` against `full_refresh` (two tables of `model`'s published columns) inside one engine."""
    schema, table = (n.strip('"') for n in incremental.split(".", 1))
    expected = {c.name: c.data_type for c in model.columns}
    if engine.table_columns(schema, table) != expected:
        return ModelAudit(engine.name, model.name, False,
                          note="its published columns changed with the full refresh: nothing to compare row by row")
    spec = TableSpec(full_refresh, tuple(c.as_fingerprint_column() for c in model.columns), model.key,
                     model.partition_by, model.measures)
    columns = list(spec.columns)
    inc_fp = grouped_fingerprints(engine, incremental, columns, partition_sql(spec), spec.measures)
    full_fp = grouped_fingerprints(engine, full_refresh, columns, partition_sql(spec), spec.measures)
    audit = ModelAudit(engine.name, model.name, True, sum(f.rows for f in inc_fp.values()),
                       sum(f.rows for f in full_fp.values()))
    differing = sorted((p for p in set(inc_fp) | set(full_fp) if inc_fp.get(p) != full_fp.get(p)),
                       key=_partition_text)
    if not differing:
        return audit
    counts, keys = _differing_keys(engine, spec, incremental, differing, max_keys)
    for part in differing:
        i, f = inc_fp.get(part), full_fp.get(part)
        text = _partition_text(part)
        audit.partitions.append(PartitionDrift(
            engine.name, model.name, text, i.rows if i else 0, f.rows if f else 0,
            {k: counts.get((text, k), 0) for k in KINDS}, keys.get(text, []),
            {m: str(s) for m, s in zip(spec.measures, i.measure_sums)} if i else {},
            {m: str(s) for m, s in zip(spec.measures, f.measure_sums)} if f else {}))
    return audit


def _differing_keys(engine: Engine, spec: TableSpec, incremental: str, partitions: list, max_keys: int
                    ) -> tuple[dict[tuple[str, str], int], dict[str, list[DriftKey]]]:
    """The differing keys of the differing partitions: counts per (partition, kind) of all of them, and the
    first `max_keys` of each of the first MAX_DETAILED_PARTITIONS partitions with their columns."""
    names = [c.name for c in spec.columns]
    texts = ", ".join(f"{column_text_sql(c)} as {quote('c_' + c.name)}" for c in spec.columns)
    params = [p if isinstance(p, date) else date.fromisoformat(str(p)) for p in partitions if p is not None]
    clauses = [f"{partition_sql(spec)} in ({', '.join(['%s'] * len(params))})"] if params else []
    if None in partitions:  # rows without a partition value form a partition of their own
        clauses.append(f"{partition_sql(spec)} is null")
    inside = "(" + " or ".join(clauses) + ")"

    def side(table: str) -> str:
        return (f"select coalesce(cast({partition_sql(spec)} as varchar), '{NULL_PARTITION}') as p, "
                f"{key_text_sql(spec)} as k, {texts} "
                f"from {table} where {inside}")

    with_sides = (f"with f as ({side(spec.name)}), i as ({side(incremental)}), "
                  "fo as (select * from f except all select * from i), "
                  "io as (select * from i except all select * from f), "
                  "dk as (select p, k from fo union select p, k from io), "
                  "fc as (select p, k, count(*) as n from f group by p, k), "
                  "ic as (select p, k, count(*) as n from i group by p, k), "
                  "kinds as (select dk.p, dk.k, case when ic.n is null then 'missing' when fc.n is null then 'extra' "
                  "when ic.n <> fc.n then 'duplicated' else 'different' end as kind, "
                  "row_number() over (partition by dk.p order by dk.k) as n "
                  "from dk left join fc on fc.p = dk.p and fc.k = dk.k left join ic on ic.p = dk.p and ic.k = dk.k) ")
    both = params * 2
    counts = {(str(p), str(kind)): int(n) for p, kind, n in engine.fetchall(
        with_sides + "select p, kind, count(*) from kinds group by p, kind", both)}
    detailed = [_partition_text(p) for p in partitions][:MAX_DETAILED_PARTITIONS]
    listed = engine.fetchall(
        with_sides + "select kinds.p, kinds.k, kinds.kind from kinds where kinds.n <= %s and kinds.p in ("
        + ", ".join(["%s"] * len(detailed)) + ") order by kinds.p, kinds.k", [*both, max_keys, *detailed])
    keys: dict[str, list[DriftKey]] = {}
    different = [(p, k) for p, k, kind in listed if kind == "different"]
    rows = _rows_of(engine, spec, incremental, different, side, params) if different else {}
    for p, k, kind in listed:
        entry = DriftKey(k.replace("\x1f", " | ").replace(NULL_TEXT, "NULL"), kind)
        if kind == "different":
            inc_row, full_row = rows.get(("i", p, k)), rows.get(("f", p, k))
            if inc_row is not None and full_row is not None:
                entry.columns = [n for n, a, b in zip(names, inc_row, full_row) if a != b]
                entry.incremental = {c: inc_row[names.index(c)] for c in entry.columns}
                entry.full_refresh = {c: full_row[names.index(c)] for c in entry.columns}
        keys.setdefault(p, []).append(entry)
    return counts, keys


def _partition_text(value: Any) -> str:
    """A partition as the report writes it: its date (YYYY-MM-DD, as both engines cast it), or NULL."""
    return NULL_PARTITION if value is None else str(value)


def _rows_of(engine: Engine, spec: TableSpec, incremental: str, keys: list[tuple[str, str]], side, params: list
             ) -> dict[tuple[str, str, str], tuple]:
    """The rows of these (partition, key) pairs on both sides (one per key: `different` keys have as many on
    either side), each column as its canonical text (None = NULL)."""
    found: dict[tuple[str, str, str], tuple] = {}
    by_key = ", ".join(["%s"] * len(keys))
    wanted = set(keys)
    for label, table in (("i", incremental), ("f", spec.name)):
        sql = f"select * from ({side(table)}) s where s.k in ({by_key})"
        for row in engine.fetchall(sql, [*params, *(k for _, k in keys)]):
            if (row[0], row[1]) in wanted:
                found[(label, row[0], row[1])] = tuple(None if v == NULL_TEXT else v for v in row[2:])
    return found


# ------------------------------------------------------------------------------------------ the control plane

STORED_COLUMNS = ("run_id", "engine", "model", "partition", "status", "incremental_rows", "full_refresh_rows",
                  "keys_missing", "keys_extra", "keys_different", "keys_duplicated", "detail", "checked_at")


def store_drift(engines: Sequence[Engine], report: DriftReport) -> None:
    """Every engine's evident.drift_reports gets the whole report (all engines' rows; a rerun of the run id
    replaces them), as evident.reconciliations does."""
    rows = [tuple(r[c] for c in STORED_COLUMNS) for r in report.rows()]
    placeholders = "(" + ", ".join(["%s"] * len(STORED_COLUMNS)) + ")"
    for engine in engines:
        with engine.transaction():
            engine.execute("delete from evident.drift_reports where run_id = %s", [report.run_id])
            for start in range(0, len(rows), 200):
                chunk = rows[start:start + 200]
                engine.execute(f"insert into evident.drift_reports ({', '.join(STORED_COLUMNS)}) values "
                               + ", ".join([placeholders] * len(chunk)), [v for r in chunk for v in r])
