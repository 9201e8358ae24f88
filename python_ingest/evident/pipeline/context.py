"""A run of the pipeline: lock, engines, run record — the context every step runs in."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from evident import logs
from evident.config import Settings
from evident.control.lock import RunLock
from evident.control.runs import finish_run, new_run_id, start_run
from evident.control.schema import ensure_control_plane
from evident.engines import Engine, open_engines
from evident.land.raw_tables import ensure_raw_tables
from evident.land.sources import load_sources
from evident.project import Project, find_project
from evident.retry import with_retry
from evident.revision import code_revision

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


def connect_engines(settings: Settings, application_name: str, *, read_only: bool = False) -> list[Engine]:
    """Postgres (authoritative) first when configured, then DuckDB; each created with its schemas unless
    read-only (a read-only open never creates anything)."""
    engines = with_retry(lambda: open_engines(settings.duckdb_path, settings.postgres_dsn, application_name,
                                              read_only=read_only),
                         what="connecting to the warehouse")
    if read_only:
        return engines
    try:
        for engine in engines:
            with_retry(lambda: prepare_engine(engine, settings.project),
                       what=f"{engine.name}: creating Evident's schemas")
    except BaseException:
        for engine in engines:
            engine.close()
        raise
    return engines


def prepare_engine(engine: Engine, project: Project | None = None) -> None:
    """The control plane and every source's raw tables, created where missing (idempotent)."""
    sources = load_sources(project or find_project())
    ensure_control_plane(engine)
    ensure_raw_tables(engine, [s.contract for s in sources.values()])


@contextlib.contextmanager
def open_run(settings: Settings, command: str, wait: bool | float | None = False) -> Iterator[RunContext]:
    run_id = new_run_id()
    logs.bind(run_id=run_id, command=command)  # every line from here on carries them (json logs)
    revision = code_revision(settings.project.root)
    with RunLock(settings.duckdb_path, settings.postgres_dsn, run_id, command, wait):
        engines = connect_engines(settings, f"evident {command} {run_id}")
        ctx = RunContext(settings, run_id, command, revision, engines)
        try:
            for engine in engines:
                with_retry(lambda: start_run(engine, run_id, command, revision),
                           what=f"{engine.name}: recording the run")
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
