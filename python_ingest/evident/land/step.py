"""The land step inside a run: every routed file under the landing dir, in lexicographic path order, on every
engine, each with its source's pinned contract. Files no contract routes are reported and left alone."""
from __future__ import annotations

from evident.land.loader import LandOutcome, land_files
from evident.land.sources import load_sources, route
from evident.pipeline.context import RunContext


def land(ctx: RunContext) -> list[LandOutcome]:
    sources = load_sources(ctx.settings.project)
    routing = route(sources, ctx.settings.landing_dir)
    routed = [(path, sources[name].contract) for name, path in routing.ordered()]
    outcomes = land_files(ctx.engines, ctx.settings.landing_dir, routed, ctx.run_id, ctx.code_revision,
                          workers=ctx.settings.land_workers)
    unrouted = [p.relative_to(ctx.settings.landing_dir).as_posix() for p in routing.unrouted]
    ctx.detail["land"] = summarize(outcomes)
    ctx.detail["unrouted"] = unrouted
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


def unrouted_note(unrouted: list[str], limit: int = 5) -> str | None:
    """What `land` and `status` say about files no contract routes (never silently skipped)."""
    if not unrouted:
        return None
    shown = ", ".join(unrouted[:limit]) + (f" and {len(unrouted) - limit} more" if len(unrouted) > limit else "")
    return (f"{len(unrouted)} file(s) under the landing dir match no contract's `landing` glob and were left "
            f"alone: {shown}")
