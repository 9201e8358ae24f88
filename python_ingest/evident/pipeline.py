"""A run of the pipeline: lock, engines, run record — and the steps that run inside it."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Iterator

from .config import Settings
from .contracts import Contract, load_contract
from .engines import DuckDBEngine, Engine, PostgresEngine
from .landing import LandOutcome, land_file
from .lock import RunLock
from .records import source_files
from .retry import with_retry
from .revision import code_revision
from .runs import finish_run, new_run_id, start_run

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    settings: Settings
    run_id: str
    command: str
    code_revision: str
    engines: list[Engine]
    detail: dict = field(default_factory=dict)
    status: str = "succeeded"


def connect_engines(settings: Settings, application_name: str) -> list[Engine]:
    """Postgres (authoritative) first when configured, then DuckDB; each created with its schema."""
    engines: list[Engine] = []
    try:
        if settings.postgres_dsn:
            engines.append(with_retry(lambda: PostgresEngine(settings.postgres_dsn, application_name),
                                      what="connecting to Postgres"))
        engines.append(with_retry(lambda: DuckDBEngine(settings.duckdb_path),
                                  what=f"opening DuckDB file {settings.duckdb_path}"))
        for engine in engines:
            with_retry(engine.ensure_schema, what=f"{engine.name}: creating Evident's schemas")
    except BaseException:
        for engine in engines:
            engine.close()
        raise
    return engines


@contextlib.contextmanager
def open_run(settings: Settings, command: str, wait: bool = False) -> Iterator[RunContext]:
    run_id = new_run_id()
    revision = code_revision()
    with RunLock(settings.duckdb_path, settings.postgres_dsn, run_id, command, wait):
        engines = connect_engines(settings, f"evident {command} {run_id}")
        ctx = RunContext(settings, run_id, command, revision, engines)
        try:
            for engine in engines:
                with_retry(lambda: start_run(engine, run_id, command, revision), what=f"{engine.name}: recording the run")
            try:
                yield ctx
            except BaseException as exc:
                ctx.status = "failed"
                ctx.detail.setdefault("error", str(exc))
                raise
            finally:
                for engine in engines:
                    with contextlib.suppress(Exception):
                        finish_run(engine, run_id, ctx.status, ctx.detail)
        finally:
            for engine in engines:
                engine.close()


def land(ctx: RunContext, contract: Contract | None = None) -> list[LandOutcome]:
    """Land every file under the landing dir, in lexicographic path order, on every engine."""
    contract = contract or load_contract()
    outcomes: list[LandOutcome] = []
    for path in source_files(ctx.settings.landing_dir):
        outcomes.extend(land_file(ctx.engines, ctx.settings.landing_dir, path, contract, ctx.run_id, ctx.code_revision))
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
