"""`evident status`: batches by state, the last successful land, rows landed and quarantined — per engine.

Reads only: the engines are opened read-only and nothing is created. An engine where nothing has run yet
(no control plane) is reported as such instead of failing.
"""
from __future__ import annotations

from evident.engines import Engine

# What status reads; missing ones mean "nothing has run here yet", not an error.
_TABLES = (("evident", "batches"), ("evident", "checkpoints"), ("raw", "app_events"),
           ("raw", "app_events_quarantine"))


def engine_status(engine: Engine) -> dict:
    missing = [f"{schema}.{table}" for schema, table in _TABLES if not engine.table_exists(schema, table)]
    if missing:
        return {"engine": engine.name, "batches_by_state": {}, "last_successful_land": None, "rows_landed": 0,
                "rows_quarantined": 0, "quarantined_by_reason": {}, "recent_failures": [],
                "not_set_up": missing}
    states = dict(engine.fetchall("select state, count(*) from evident.batches group by state order by state"))
    last = engine.fetchvalue("select max(landed_at) from evident.checkpoints")
    landed = engine.fetchvalue("select count(*) from raw.app_events")
    quarantined = dict(engine.fetchall(
        "select reason_code, count(*) from raw.app_events_quarantine group by reason_code order by reason_code"))
    failed = engine.fetchall(
        "select source_file, failure_reason from evident.batches where state = 'failed' "
        "order by updated_at desc limit 5")
    return {
        "engine": engine.name,
        "batches_by_state": states,
        "last_successful_land": last.isoformat() + "Z" if last else None,
        "rows_landed": landed,
        "rows_quarantined": sum(quarantined.values()),
        "quarantined_by_reason": quarantined,
        "recent_failures": [{"source_file": f, "reason": r} for f, r in failed],
    }


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
        for failure in s["recent_failures"]:
            lines.append(f"  failed: {failure['source_file']}: {failure['reason']}")
    return "\n".join(lines)
