"""`evident status`: per engine and per source, batches by state, the last successful land, rows landed and
quarantined; and the files under the landing dir that no contract routes.

Reads only: the engines are opened read-only and nothing is created. An engine where nothing has run yet
(no control plane) is reported as such instead of failing, and so is a source whose tables do not exist yet.
"""
from __future__ import annotations

from evident.engines import Engine
from evident.land.raw_tables import RawTable
from evident.land.sources import Source

# What status reads; missing ones mean "nothing has run here yet", not an error.
_CONTROL_PLANE = (("evident", "batches"), ("evident", "checkpoints"))


def engine_status(engine: Engine, sources: dict[str, Source], unrouted: list[str]) -> dict:
    missing = [f"{schema}.{table}" for schema, table in _CONTROL_PLANE if not engine.table_exists(schema, table)]
    if missing:
        return {"engine": engine.name, "batches_by_state": {}, "last_successful_land": None, "rows_landed": 0,
                "rows_quarantined": 0, "quarantined_by_reason": {}, "recent_failures": [], "sources": {},
                "files_not_routed": unrouted, "not_set_up": missing}
    states = dict(engine.fetchall("select state, count(*) from evident.batches group by state order by state"))
    last = engine.fetchvalue("select max(landed_at) from evident.checkpoints")
    failed = engine.fetchall(
        "select source_file, failure_reason from evident.batches where state = 'failed' "
        "order by updated_at desc limit 5")
    per_source = {name: _source_status(engine, source) for name, source in sources.items()}
    quarantined: dict[str, int] = {}
    for s in per_source.values():
        for reason, n in s["quarantined_by_reason"].items():
            quarantined[reason] = quarantined.get(reason, 0) + n
    return {
        "engine": engine.name,
        "batches_by_state": states,
        "last_successful_land": _iso(last),
        "rows_landed": sum(s["rows_landed"] for s in per_source.values()),
        "rows_quarantined": sum(quarantined.values()),
        "quarantined_by_reason": dict(sorted(quarantined.items())),
        "recent_failures": [{"source_file": f, "reason": r} for f, r in failed],
        "sources": per_source,
        "files_not_routed": unrouted,
    }


def _source_status(engine: Engine, source: Source) -> dict:
    table = RawTable(source.contract)
    if not engine.table_exists("raw", source.name):
        return {"contract_id": source.contract.contract_id, "not_set_up": [table.name], "rows_landed": 0,
                "rows_quarantined": 0, "quarantined_by_reason": {}, "batches_by_state": {}, "last_landed_at": None}
    quarantined = dict(engine.fetchall(
        f"select reason_code, count(*) from {table.quarantine} group by reason_code order by reason_code"))
    states = dict(engine.fetchall(
        "select state, count(*) from evident.batches where source = %s group by state order by state", [source.name]))
    last = engine.fetchvalue("select max(updated_at) from evident.batches where source = %s and land_seq is not null",
                             [source.name])
    return {"contract_id": source.contract.contract_id, "rows_landed": engine.fetchvalue(
                f"select count(*) from {table.name}"),
            "rows_quarantined": sum(quarantined.values()), "quarantined_by_reason": quarantined,
            "batches_by_state": states, "last_landed_at": _iso(last)}


def _iso(value) -> str | None:
    return value.isoformat() + "Z" if value else None


def render(statuses: list[dict]) -> str:
    lines = []
    for s in statuses:
        states = ", ".join(f"{k} {v}" for k, v in s["batches_by_state"].items()) or "none"
        lines.append(f"[{s['engine']}] batches: {states}")
        if s.get("not_set_up"):
            lines.append(f"  nothing has run here yet (no {', '.join(s['not_set_up'])}); `evident run` sets it up")
            continue
        lines.append(f"  last successful land: {s['last_successful_land'] or 'never'}")
        lines.append(f"  rows landed: {s['rows_landed']}   rows quarantined: {s['rows_quarantined']}"
                     + (f" ({', '.join(f'{k} {v}' for k, v in s['quarantined_by_reason'].items())})"
                        if s["quarantined_by_reason"] else ""))
        for name, src in s["sources"].items():
            if src.get("not_set_up"):
                lines.append(f"  {name}: nothing landed yet ({src['contract_id']})")
                continue
            batches = ", ".join(f"{k} {v}" for k, v in src["batches_by_state"].items()) or "none"
            lines.append(f"  {name}: {src['rows_landed']} rows, {src['rows_quarantined']} quarantined; batches "
                         f"{batches}; last landed {src['last_landed_at'] or 'never'} ({src['contract_id']})")
        for failure in s["recent_failures"]:
            lines.append(f"  failed: {failure['source_file']}: {failure['reason']}")
    unrouted = statuses[0].get("files_not_routed") if statuses else None
    if unrouted:
        from evident.land.step import unrouted_note

        lines.append(unrouted_note(unrouted) or "")
    return "\n".join(lines)
