"""The batch lifecycle: explicit states, legal transitions only, each one recorded (design invariant 3).

received → validated → landed → built → gated → published → reconciled, or → failed with a reason.
A batch left in received/validated by a killed run is resumed by the next run (recorded as such); a failed
batch may be received again when whatever failed it has changed (a new contract, a transient fault).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from evident.engines import Engine
from evident.errors import IllegalTransition

STATES = ("received", "validated", "landed", "built", "gated", "published", "reconciled", "failed")
LEGAL: dict[str | None, frozenset[str]] = {
    None: frozenset({"received"}),
    "received": frozenset({"received", "validated", "failed"}),
    "validated": frozenset({"received", "landed", "failed"}),
    "landed": frozenset({"built", "failed"}),
    "built": frozenset({"gated", "failed"}),
    "gated": frozenset({"published", "failed"}),
    "published": frozenset({"reconciled"}),
    "reconciled": frozenset(),
    "failed": frozenset({"received"}),
}


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def check_transition(batch_id: str, current: str | None, target: str) -> None:
    if target not in LEGAL.get(current, frozenset()):
        raise IllegalTransition(f"batch {batch_id}: illegal transition {current or '(new)'} → {target}")


@dataclass(frozen=True)
class BatchRef:
    batch_id: str
    source_file: str
    source_sha256: str
    source_bytes: int
    contract_id: str
    code_revision: str
    source: str  # the contract's name: which raw.<source> the batch lands in


def current_state(engine: Engine, batch_id: str) -> str | None:
    row = engine.fetchone("select state from evident.batches where batch_id = %s", [batch_id])
    return row[0] if row else None


def transition(engine: Engine, batch_id: str, target: str, run_id: str, reason: str | None = None,
               **fields) -> None:
    """Move one batch to `target`, updating manifest fields; call inside the caller's transaction."""
    current = current_state(engine, batch_id)
    check_transition(batch_id, current, target)
    now = utcnow()
    assignments = ", ".join(f"{name} = %s" for name in fields)
    engine.execute(
        f"update evident.batches set state = %s, run_id = %s, updated_at = %s, failure_reason = %s"
        f"{', ' + assignments if assignments else ''} where batch_id = %s",
        [target, run_id, now, reason if target == "failed" else None, *fields.values(), batch_id],
    )
    engine.execute(
        "insert into evident.batch_transitions (batch_id, from_state, to_state, transitioned_at, run_id, reason) "
        "values (%s, %s, %s, %s, %s, %s)",
        [batch_id, current, target, now, run_id, reason],
    )


def receive(engine: Engine, ref: BatchRef, run_id: str) -> None:
    """Create the manifest row (or re-receive a failed/interrupted batch), pinning its contract_id."""
    with engine.transaction():
        current = current_state(engine, ref.batch_id)
        check_transition(ref.batch_id, current, "received")
        now = utcnow()
        if current is None:
            engine.execute(
                "insert into evident.batches (batch_id, source, source_file, source_sha256, source_bytes, "
                "contract_id, code_revision, state, run_id, created_at, updated_at) "
                "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [ref.batch_id, ref.source, ref.source_file, ref.source_sha256, ref.source_bytes, ref.contract_id,
                 ref.code_revision, "received", run_id, now, now],
            )
            engine.execute(
                "insert into evident.batch_transitions (batch_id, from_state, to_state, transitioned_at, run_id, "
                "reason) values (%s, NULL, 'received', %s, %s, NULL)",
                [ref.batch_id, now, run_id],
            )
        else:
            reason = "resumed after an interrupted run" if current != "failed" else "retried after failure"
            transition(engine, ref.batch_id, "received", run_id, reason, source=ref.source,
                       contract_id=ref.contract_id, code_revision=ref.code_revision)


def advance(engine: Engine, batch_ids: list[str], source: str, target: str, run_id: str) -> int:
    """Move every batch in `source` among `batch_ids` to `target` (build/gate/publish steps)."""
    moved = 0
    with engine.transaction():
        for batch_id in batch_ids:
            if current_state(engine, batch_id) == source:
                transition(engine, batch_id, target, run_id)
                moved += 1
    return moved


def batches_in(engine: Engine, state: str) -> list[str]:
    return [r[0] for r in engine.fetchall(
        "select batch_id from evident.batches where state = %s order by land_seq, batch_id", [state])]
