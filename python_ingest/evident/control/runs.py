"""Runs: every command invocation gets a run id, recorded in each engine's control plane."""
from __future__ import annotations

import json
import secrets as _random

from evident.control.batches import utcnow
from evident.engines import Engine


def new_run_id() -> str:
    return f"{utcnow():%Y%m%dT%H%M%S}-{_random.token_hex(3)}"


def start_run(engine: Engine, run_id: str, command: str, code_revision: str) -> None:
    with engine.transaction():
        engine.execute(
            "insert into evident.runs (run_id, command, code_revision, started_at, status) values (%s, %s, %s, %s, %s) "
            "on conflict (run_id) do nothing",
            [run_id, command, code_revision, utcnow(), "running"])


def finish_run(engine: Engine, run_id: str, status: str, detail: dict) -> None:
    with engine.transaction():
        engine.execute("update evident.runs set finished_at = %s, status = %s, detail = %s where run_id = %s",
                       [utcnow(), status, json.dumps(detail, default=str, sort_keys=True), run_id])
