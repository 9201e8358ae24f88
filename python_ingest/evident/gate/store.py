"""The gate's results in the control plane: evident.gate_results on every engine, and whether a gate passed."""
from __future__ import annotations

from collections.abc import Sequence

from evident.control.batches import utcnow
from evident.engines import Engine
from evident.gate.report import GateReport
from evident.retry import with_retry

GATE_RESULT_COLUMNS = ("run_id", "engine", "suite", "expectation_type", "column_name", "success",
                       "observed_value", "expected", "failing_sample", "batch_ids", "validated_at")


def store_results(engines: Sequence[Engine], report: GateReport) -> None:
    """Write every check of the report to evident.gate_results on every engine, one transaction each."""
    validated_at = utcnow()
    for engine in engines:
        rows = [c.as_row(report.run_id, ",".join(report.batch_ids.get(c.engine, [])), validated_at)
                for c in report.checks]
        with_retry(lambda: _store(engine, report.run_id, rows), what=f"{engine.name}: storing the gate results")


def _store(engine: Engine, run_id: str, rows: list[tuple]) -> None:
    with engine.transaction():
        engine.execute("delete from evident.gate_results where run_id = %s", [run_id])
        placeholders = ", ".join(["%s"] * len(GATE_RESULT_COLUMNS))
        sql = f"insert into evident.gate_results ({', '.join(GATE_RESULT_COLUMNS)}) values ({placeholders})"
        engine.executemany(sql, rows)


def gate_passed(engine: Engine, run_id: str) -> bool:
    """Whether evident.gate_results holds a complete, passing gate for run_id on this engine's control plane.

    A database error propagates (a dropped connection is a fault to retry, not "the gate has not passed")."""
    row = engine.fetchone(
        "select count(*), sum(case when success then 0 else 1 end) from evident.gate_results where run_id = %s",
        [run_id])
    return bool(row and row[0] and not row[1])
