"""`evident status`: batches by state, the last successful land, rows landed and quarantined — per engine."""
from __future__ import annotations

from evident.engines import Engine


def engine_status(engine: Engine) -> dict:
    states = dict(engine.fetchall("select state, count(*) from evident.batches group by state order by state"))
    last = engine.fetchone("select max(landed_at) from evident.checkpoints")[0]
    landed = engine.fetchone("select count(*) from raw.app_events")[0]
    quarantined = dict(engine.fetchall(
        "select reason_code, count(*) from raw.app_events_quarantine group by reason_code order by reason_code"))
    failed = engine.fetchall(
        "select source_file, failure_reason from evident.batches where state = 'failed' order by updated_at desc limit 5")
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
        lines.append(f"  last successful land: {s['last_successful_land'] or 'never'}")
        lines.append(f"  rows landed: {s['rows_landed']}   rows quarantined: {s['rows_quarantined']}"
                     + (f" ({', '.join(f'{k} {v}' for k, v in s['quarantined_by_reason'].items())})"
                        if s["quarantined_by_reason"] else ""))
        for failure in s["recent_failures"]:
            lines.append(f"  failed: {failure['source_file']}: {failure['reason']}")
    return "\n".join(lines)
