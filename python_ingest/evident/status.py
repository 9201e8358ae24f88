"""`evident status`: per engine and per source, batches by state, the last successful land, rows landed and
quarantined, the runs (in progress, last, last successful), failed batches not yet resolved, files waiting,
dbt source freshness and the last gate and reconciliation; and the files under the landing dir that no
contract routes. `--check` turns it into a verdict (evident.health).

Reads only: the engines are opened read-only (Postgres sessions too: default_transaction_read_only), the run
lock is looked at but never taken, and nothing is created. An engine where nothing has run yet (no control
plane) is reported as such instead of failing, and so is a source whose tables do not exist yet. While a run
holds the DuckDB file (DuckDB admits no reader beside a writer in another process) that engine is reported
busy and the facts come from Postgres when it is configured.

dbt source freshness is computed here, not by `dbt source freshness`: the same `max(loaded_at_field)` against
the same `warn_after`/`error_after` read from the dbt project's source YAML. Running dbt would cost its 3–4.5 s
start-up on every check, write target/ artifacts (status writes nothing) and open the DuckDB file for writing
through dbt-duckdb — which fails, or blocks a starting run, exactly when a run is in progress.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from evident import health
from evident.config import Settings
from evident.control.batches import utcnow
from evident.control.lock import ADVISORY_KEY
from evident.engines import DuckDBEngine, Engine, PostgresEngine, classify
from evident.land.raw_tables import RawTable
from evident.land.sources import Source, route
from evident.retry import with_retry

# What status reads; missing ones mean "nothing has run here yet", not an error.
_CONTROL_PLANE = (("evident", "batches"), ("evident", "checkpoints"))
_PERIOD_S = {"minute": 60, "hour": 3600, "day": 86400}
# Another process briefly holding the file (dbt or a notebook opened by hand) is waited for this long; a run
# holding the lock holds the file until it ends, so then there is no waiting.
DUCKDB_BUSY_WAIT_S = 2.0


# ------------------------------------------------------------------------------------------ the whole report


def read_status(settings: Settings, sources: dict[str, Source], *, max_run_s: float | None = None) -> dict:
    """Everything `status` shows: {"checked_at", "run_in_progress", "engines": [per engine, authoritative
    first], "files_not_routed"}."""
    now = utcnow()
    landing = settings.landing_dir
    routing = route(sources, landing) if landing.is_dir() else None
    unrouted = [p.relative_to(landing).as_posix() for p in routing.unrouted] if routing else []
    holder = health.lock_file_holder(settings.duckdb_path)
    engines: list[dict] = []
    histories: dict[str, list[health.RunRow]] = {}
    if settings.postgres_dsn:
        dsn = settings.postgres_dsn
        pg = with_retry(lambda: _open_postgres(dsn), what="connecting to the warehouse")
        try:
            if holder is None or "run_id" not in holder:  # no lock file holder (another host), or caught
                # between the holder's truncate and write: the Postgres half names it
                pg_holder = with_retry(lambda: health.postgres_lock_holder(pg, ADVISORY_KEY),
                                       what="postgres: reading the run lock")
                if pg_holder is not None:
                    holder = {**(holder or {}), **pg_holder}
            facts, histories["postgres"] = with_retry(lambda: _read_engine(pg, sources, holder, settings, now),
                                                      what="postgres: reading the status")
            engines.append(facts)
        finally:
            pg.close()
    duck = _open_duckdb(settings.duckdb_path, 0.0 if holder else DUCKDB_BUSY_WAIT_S)
    if isinstance(duck, str):
        engines.append({"engine": DuckDBEngine.name, "readable": False, "busy": duck})
    else:
        try:
            facts, histories["duckdb"] = with_retry(lambda: _read_engine(duck, sources, holder, settings, now),
                                                    what="duckdb: reading the status")
            engines.append(facts)
        finally:
            duck.close()
    for facts in engines:  # after the engines are closed: hashing new files must not keep the file open
        if facts.get("readable"):
            _add_file_facts(facts, routing, landing)
        facts["files_not_routed"] = unrouted
    in_progress = _run_in_progress(holder, engines, histories, now, max_run_s)
    for facts in engines:
        facts["run_in_progress"] = in_progress
    return {"checked_at": health.iso(now), "run_in_progress": in_progress, "engines": engines,
            "files_not_routed": unrouted}


def _open_postgres(dsn: str) -> PostgresEngine:
    engine = PostgresEngine(dsn, "evident status")
    engine.execute("set default_transaction_read_only = on")
    return engine


def _open_duckdb(path: Path, wait_s: float) -> DuckDBEngine | str:
    """The DuckDB file opened read-only, or why not (held open by another process's writer)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return DuckDBEngine(path, read_only=True)
        except Exception as exc:
            if classify(exc) != "transient":
                return with_retry(lambda: DuckDBEngine(path, read_only=True), what="connecting to the warehouse")
            if time.monotonic() >= deadline:
                return f"the file is held open by another process ({' '.join(str(exc).split())[:300]})"
            time.sleep(0.2)


def _run_in_progress(holder: dict | None, engines: list[dict], histories: dict[str, list[health.RunRow]],
                     now: datetime, max_run_s: float | None) -> dict | None:
    if holder is None:
        return None
    run = dict(holder)
    started = _parse_time(run.get("started_at") or run.get("backend_start"))
    readable = next((e for e in engines if e.get("readable")), None)
    runs = histories.get(readable["engine"], []) if readable else []
    row = next((r for r in runs if r.run_id == run.get("run_id")), None)
    if row is not None:
        started = started or row.started_at
        run["full_refresh"] = row.full_refresh
    run["age_s"] = health.age_s(started, now)
    if max_run_s is not None:
        run["limit_s"], run["limit_basis"] = max_run_s, "--max-run"
    elif readable:
        limit = health.usual_limit(runs, run.get("command", "run"), run.get("full_refresh"))
        run["limit_s"], run["limit_basis"] = limit.limit_s, limit.basis
    else:
        run["limit_s"], run["limit_basis"] = health.FLOOR_S, "the run history cannot be read now: the floor"
    return run


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.rstrip("Z"))
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------ one engine


def _read_engine(engine: Engine, sources: dict[str, Source], holder: dict | None, settings: Settings,
                 now: datetime) -> tuple[dict, list[health.RunRow]]:
    missing = [f"{schema}.{table}" for schema, table in _CONTROL_PLANE if not engine.table_exists(schema, table)]
    if missing:
        return {"engine": engine.name, "readable": False, "batches_by_state": {}, "last_successful_land": None,
                "rows_landed": 0, "rows_quarantined": 0, "quarantined_by_reason": {}, "recent_failures": [],
                "sources": {}, "not_set_up": missing}, []
    states = dict(engine.fetchall("select state, count(*) from evident.batches group by state order by state"))
    last = engine.fetchvalue("select max(landed_at) from evident.checkpoints")
    failed = engine.fetchall(
        "select source_file, failure_reason from evident.batches where state = 'failed' "
        "order by updated_at desc limit 5")
    freshness = dbt_freshness_config(settings.project.dbt_project_dir)
    per_source = {name: _source_status(engine, source, freshness.get(name), now) for name, source in sources.items()}
    quarantined: dict[str, int] = {}
    for s in per_source.values():
        for reason, n in s["quarantined_by_reason"].items():
            quarantined[reason] = quarantined.get(reason, 0) + n
    runs = health.read_runs(engine) if engine.table_exists("evident", "runs") else []
    facts = {
        "engine": engine.name,
        "readable": True,
        "batches_by_state": states,
        "last_successful_land": health.iso(last),
        "rows_landed": sum(s["rows_landed"] for s in per_source.values()),
        "rows_quarantined": sum(quarantined.values()),
        "quarantined_by_reason": dict(sorted(quarantined.items())),
        "recent_failures": [{"source_file": f, "reason": r} for f, r in failed],
        "sources": per_source,
        **_runs_facts(engine, runs, holder, now),
        "last_gate": _last_gate(engine),
        "last_reconciliation": _last_reconciliation(engine),
        "published_not_declared": published_not_declared(engine, settings),
        # read here, judged against the landing dir after the engine is closed (_add_file_facts)
        "_failed": engine.fetchall(
            "select b.batch_id, b.source, b.source_file, b.source_sha256, b.failure_reason, b.updated_at "
            "from evident.batches b where b.state = 'failed' and not exists (select 1 from evident.checkpoints c "
            "where c.source_file = b.source_file and c.landed_at > b.updated_at) order by b.updated_at"),
        "_checkpoints": engine.fetchall(
            "select c.source_file, c.source_sha256, b.source_bytes, c.landed_at from evident.checkpoints c "
            "left join evident.batches b on b.batch_id = c.batch_id"),
    }
    return facts, runs


def _runs_facts(engine: Engine, runs: list[health.RunRow], holder: dict | None, now: datetime) -> dict:
    holder_id = (holder or {}).get("run_id")
    if holder is not None and holder_id is None:  # held, but the record is unreadable: the newest running row
        holder_id = next((r.run_id for r in runs if r.status == "running"), None)
    finished = [r for r in runs if r.run_id != holder_id]
    last = finished[0] if finished else None
    last_ok = next((r for r in finished if r.status == "succeeded"), None)
    last_dict = None
    if last is not None:
        status = "interrupted" if last.status == "running" else last.status
        last_dict = {"run_id": last.run_id, "command": last.command, "status": status,
                     "started_at": health.iso(last.started_at), "finished_at": health.iso(last.finished_at),
                     "duration_s": last.duration_s, "full_refresh": last.full_refresh}
        if status != "succeeded":
            detail = engine.fetchvalue("select detail from evident.runs where run_id = %s", [last.run_id])
            try:
                error = json.loads(detail or "{}").get("error")
            except (ValueError, AttributeError):
                error = None
            last_dict["error"] = error
    return {
        "last_run": last_dict,
        "last_successful_run": None if last_ok is None else {
            "run_id": last_ok.run_id, "command": last_ok.command, "finished_at": health.iso(last_ok.finished_at),
            "age_s": health.age_s(last_ok.finished_at, now), "duration_s": last_ok.duration_s,
            "full_refresh": last_ok.full_refresh},
    }


def _last_gate(engine: Engine) -> dict | None:
    if not engine.table_exists("evident", "gate_results"):
        return None
    rows = engine.fetchall(
        "select run_id, engine, suite, success, validated_at from evident.gate_results "
        "where run_id = (select max(run_id) from evident.gate_results)")
    if not rows:
        return None
    suites: dict[tuple[str, str], bool] = {}
    for _, eng, suite, success, _ in rows:
        suites[(eng, suite)] = suites.get((eng, suite), True) and bool(success)
    failed = sorted(f"{eng}:{suite}" for (eng, suite), ok in suites.items() if not ok)
    return {"run_id": rows[0][0], "validated_at": health.iso(max(r[4] for r in rows)), "success": not failed,
            "suites": len(suites), "failed_suites": failed,
            "failed_expectations": sum(1 for r in rows if not r[3])}


def _last_reconciliation(engine: Engine) -> dict | None:
    if not engine.table_exists("evident", "reconciliations"):
        return None
    rows = engine.fetchall(
        "select run_id, table_name, status, within_threshold, checked_at from evident.reconciliations "
        "where run_id = (select max(run_id) from evident.reconciliations)")
    if not rows:
        return None
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r[2]] = by_status.get(r[2], 0) + 1
    failing = sorted({r[1] for r in rows if r[2] == "mismatched" and not r[3]})
    return {"run_id": rows[0][0], "checked_at": health.iso(max(r[4] for r in rows)),
            "status": "skipped" if set(by_status) == {"skipped"} else "mismatched" if failing else "matched",
            "partitions_by_status": dict(sorted(by_status.items())), "mismatched_tables": failing}


def _source_status(engine: Engine, source: Source, freshness: dict | None, now: datetime) -> dict:
    table = RawTable(source.contract)
    if not engine.table_exists("raw", source.name):
        return {"contract_id": source.contract.contract_id, "not_set_up": [table.name], "rows_landed": 0,
                "rows_quarantined": 0, "quarantined_by_reason": {}, "batches_by_state": {}, "last_landed_at": None,
                "newest_partition": None, "newest_landed_at": None, "newest_landed_age_s": None,
                "freshness": None}
    quarantined = dict(engine.fetchall(
        f"select reason_code, count(*) from {table.quarantine} group by reason_code order by reason_code"))
    states = dict(engine.fetchall(
        "select state, count(*) from evident.batches where source = %s group by state order by state", [source.name]))
    last = engine.fetchvalue(
        "select max(c.landed_at) from evident.checkpoints c join evident.batches b on b.batch_id = c.batch_id "
        "where b.source = %s", [source.name])
    partition = engine.fetchvalue(
        "select max(max_event_ts) from evident.batches where source = %s and land_seq is not null "
        "and state <> 'failed'", [source.name])
    loaded_at_field = (freshness or {}).get("loaded_at_field") or "landed_at"
    newest = _newest_loaded(engine, table.name, loaded_at_field)
    newest_age = health.age_s(newest, now)
    return {"contract_id": source.contract.contract_id, "rows_landed": engine.fetchvalue(
                f"select count(*) from {table.name}"),
            "rows_quarantined": sum(quarantined.values()), "quarantined_by_reason": quarantined,
            "batches_by_state": states, "last_landed_at": health.iso(last),
            "newest_partition": partition.date().isoformat() if isinstance(partition, datetime) else partition,
            "newest_landed_at": health.iso(newest), "newest_landed_age_s": newest_age,
            "freshness": _freshness(freshness, newest_age)}


def _newest_loaded(engine: Engine, table: str, field: str):
    """max(<loaded_at_field>), as dbt source freshness computes it. For landed_at (every row of a batch gets
    the landing transaction's time, and one run at a time assigns land_seq in commit order) the newest
    land_seq's rows hold it, which the land_seq index finds without scanning the table."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field):
        return None  # an expression, not a column: dbt would run it, status does not
    if field == "landed_at":
        return engine.fetchvalue(
            f"select max(landed_at) from {table} where land_seq = (select max(land_seq) from {table})")
    return engine.fetchvalue(f'select max("{field}") from {table}')


def _freshness(config: dict | None, age: float | None) -> dict | None:
    if not config or (config.get("warn_after_s") is None and config.get("error_after_s") is None):
        return None
    status = "no data" if age is None else \
        "error" if config.get("error_after_s") is not None and age > config["error_after_s"] else \
        "warn" if config.get("warn_after_s") is not None and age > config["warn_after_s"] else "pass"
    return {**config, "status": status}


def dbt_freshness_config(dbt_project_dir: Path) -> dict[str, dict]:
    """Per raw table: loaded_at_field and warn_after/error_after (seconds) from the dbt project's source YAML
    (`sources:` under models/, table settings over source settings, `config.freshness` or `freshness`)."""
    found: dict[str, dict] = {}
    for path in sorted((dbt_project_dir / "models").rglob("*.yml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue  # dbt itself reports a broken YAML file; status is not the place
        for src in (doc.get("sources") or []) if isinstance(doc, dict) else []:
            if not isinstance(src, dict) or (src.get("schema") or src.get("name")) != "raw":
                continue
            for table in src.get("tables") or []:
                if not isinstance(table, dict) or not table.get("name"):
                    continue
                fresh = _freshness_of(table) or _freshness_of(src) or {}
                found[table["name"]] = {
                    "loaded_at_field": table.get("loaded_at_field") or src.get("loaded_at_field"),
                    "warn_after_s": _after(fresh.get("warn_after")),
                    "error_after_s": _after(fresh.get("error_after"))}
    return found


def _freshness_of(node: dict) -> dict | None:
    config = node.get("config")
    if not isinstance(config, dict):
        config = {}
    fresh = config.get("freshness", node.get("freshness"))
    return fresh if isinstance(fresh, dict) else None


def _after(spec) -> float | None:
    if not isinstance(spec, dict) or spec.get("count") is None or spec.get("period") not in _PERIOD_S:
        return None
    return float(spec["count"]) * _PERIOD_S[spec["period"]]


# ------------------------------------------------------------------------------------------ the landing dir


def _add_file_facts(facts: dict, routing, landing: Path) -> None:
    """Files waiting (routed, content not landed on this engine) and failed batches still unresolved.

    A routed file counts as landed without reading it when its checkpoint has the same size and the file has
    not changed since it landed (mtime), as make and rsync decide; otherwise it is hashed like `land` does.
    """
    checkpoints = {f: (sha, size, at) for f, sha, size, at in facts.pop("_checkpoints")}
    failed = facts.pop("_failed")
    rejected_content = {(f, sha) for _, _, f, sha, _, _ in failed}
    waiting: dict[str, list[str]] = {}
    for name, paths in (routing.files.items() if routing else []):
        for path in paths:
            rel = path.relative_to(landing).as_posix()
            try:
                st = path.stat()
            except OSError:
                continue  # gone since the listing
            cp = checkpoints.get(rel)
            if cp and cp[1] == st.st_size and datetime.fromtimestamp(st.st_mtime, UTC).replace(tzinfo=None) <= cp[2]:
                continue
            sha = _sha256(path)
            if sha is None or (cp and cp[0] == sha) or (rel, sha) in rejected_content:
                continue
            waiting.setdefault(name, []).append(rel)
    facts["files_waiting"] = sum(len(v) for v in waiting.values())
    for name, s in facts["sources"].items():
        s["files_waiting"] = waiting.get(name, [])
    facts["unresolved_failures"] = [
        {"batch_id": b, "source": src, "source_file": f, "reason": reason, "failed_at": health.iso(at)}
        for b, src, f, _, reason, at in failed if (landing / f).is_file()]


def _sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ text


def published_not_declared(engine: Engine, settings: Settings) -> list[str] | None:
    """Tables in published.* that no dbt model declares published any more (its `publish` was removed): they
    stay as they were and nothing updates them. Judged by the manifest of the newest build — status never runs
    `dbt parse` (it would write target/ and cost seconds); None until a build or parse has written one."""
    from evident.build.manifest import published_models
    from evident.publish.marts import published_tables

    target = settings.project.target_dir
    manifests = [p for p in (*target.glob("work/*/manifest.json"), target / "manifest" / "manifest.json")
                 if p.is_file()]
    if not manifests:
        return None
    try:
        manifest = json.loads(max(manifests, key=lambda p: p.stat().st_mtime_ns).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    declared = published_models(settings.project, manifest)
    return [t for t in published_tables(engine) if t not in declared]


def render(report: dict, verdict: health.Verdict | None = None) -> str:
    lines = []
    run = report.get("run_in_progress")
    if run:
        lines.append(f"run in progress: {run.get('run_id', '?')} ({run.get('command', '?')}, pid "
                     f"{run.get('pid', '?')} on {run.get('host', '?')}) for "
                     f"{health.describe_duration(run.get('age_s'))}; usual limit "
                     f"{health.describe_duration(run.get('limit_s'))} ({run.get('limit_basis')})")
    else:
        lines.append("run in progress: none")
    for s in report["engines"]:
        if s.get("busy"):
            lines.append(f"[{s['engine']}] busy: {s['busy']}")
            continue
        states = ", ".join(f"{k} {v}" for k, v in s["batches_by_state"].items()) or "none"
        lines.append(f"[{s['engine']}] batches: {states}")
        if s.get("not_set_up"):
            lines.append(f"  nothing has run here yet (no {', '.join(s['not_set_up'])}); `evident run` sets it up")
            continue
        lines.append(f"  last successful land: {s['last_successful_land'] or 'never'}")
        last, ok = s.get("last_run"), s.get("last_successful_run")
        if last:
            lines.append(f"  last run: {last['run_id']} ({last['command']}) {last['status']}"
                         + (f": {last['error']}" if last.get("error") else ""))
        lines.append(f"  last successful run: {ok['run_id']} ({ok['command']}), finished {ok['finished_at']}, "
                     f"{health.describe_duration(ok['age_s'])} ago" if ok else "  last successful run: never")
        lines.append(f"  rows landed: {s['rows_landed']}   rows quarantined: {s['rows_quarantined']}"
                     + (f" ({', '.join(f'{k} {v}' for k, v in s['quarantined_by_reason'].items())})"
                        if s["quarantined_by_reason"] else ""))
        for name, src in s["sources"].items():
            if src.get("not_set_up"):
                lines.append(f"  {name}: nothing landed yet ({src['contract_id']})")
                continue
            batches = ", ".join(f"{k} {v}" for k, v in src["batches_by_state"].items()) or "none"
            fresh = src.get("freshness")
            lines.append(f"  {name}: {src['rows_landed']} rows, {src['rows_quarantined']} quarantined; batches "
                         f"{batches}; last landed {src['last_landed_at'] or 'never'}; newest partition "
                         f"{src['newest_partition'] or 'none'}; files waiting {len(src.get('files_waiting', []))}"
                         + (f"; freshness {fresh['status']}" if fresh else "") + f" ({src['contract_id']})")
        for failure in s.get("unresolved_failures", []):
            lines.append(f"  unresolved: {failure['source_file']} failed {failure['failed_at']}: {failure['reason']}")
        gate, rec = s.get("last_gate"), s.get("last_reconciliation")
        if gate:
            lines.append(f"  last gate: run {gate['run_id']} {'passed' if gate['success'] else 'FAILED'} "
                         f"({gate['suites']} suites" + (f"; failed: {', '.join(gate['failed_suites'])}"
                                                         if gate["failed_suites"] else "") + ")")
        if rec:
            lines.append(f"  last reconciliation: run {rec['run_id']} {rec['status']}"
                         + (f" ({', '.join(rec['mismatched_tables'])})" if rec["mismatched_tables"] else ""))
        for table in s.get("published_not_declared") or []:
            lines.append(f"  published.{table}: no longer declared (no dbt model has meta.evident.publish for "
                         "it); left as it was, no longer updated")
    unrouted = report.get("files_not_routed")
    if unrouted:
        from evident.land.step import unrouted_note

        lines.append(unrouted_note(unrouted) or "")
    if verdict is not None:
        lines.append(f"health: {verdict.label} (exit {verdict.exit_code})")
        lines += [f"  ✗ {p.check}: {p.message}" for p in verdict.problems]
        lines += [f"  · {note}" for note in verdict.notes]
    return "\n".join(lines)

