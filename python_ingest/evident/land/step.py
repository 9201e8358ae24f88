"""The land step inside a run: every file under the landing dir, in lexicographic path order, on every engine."""
from __future__ import annotations

from evident.land.contracts import Contract, load_contract
from evident.land.loader import LandOutcome, land_files
from evident.land.records import source_files
from evident.pipeline.context import RunContext


def land(ctx: RunContext, contract: Contract | None = None) -> list[LandOutcome]:
    contract = contract or load_contract(project=ctx.settings.project)
    outcomes = land_files(ctx.engines, ctx.settings.landing_dir, list(source_files(ctx.settings.landing_dir)),
                          contract, ctx.run_id, ctx.code_revision, workers=ctx.settings.land_workers)
    ctx.detail["land"] = summarize(outcomes)
    if any(o.status == "rejected" for o in outcomes):
        ctx.status = "failed"
    return outcomes


def summarize(outcomes: list[LandOutcome]) -> dict:
    by_engine: dict[str, dict] = {}
    for o in outcomes:
        s = by_engine.setdefault(o.engine, {"batches": {}, "rows_in": 0, "rows_landed": 0,
                                            "rows_quarantined": 0, "rows_duplicate": 0})
        s["batches"][o.status] = s["batches"].get(o.status, 0) + 1
        for name in ("rows_in", "rows_landed", "rows_quarantined", "rows_duplicate"):
            s[name] += getattr(o, name)
    return by_engine
