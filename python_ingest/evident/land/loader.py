"""Landing: source files → validated, keyed rows in raw.<source>, exactly once, on every configured engine.

Per file (= batch, identified by path + content SHA-256):
  1. read and hash; an engine whose checkpoint already holds this content has nothing to do (cheap no-op);
  2. validate every record once, in Python, against the pinned contract; dedupe within the batch (on large
     inputs, the next files are validated in worker processes while this one lands). A barrier around each
     record: an unexpected error while validating one quarantines it (invalid_value, the error named), so no
     record, however crafted, stops the land;
  3. per engine, one transaction: find keys already landed (exact duplicates vs conflicting duplicates, whose
     lines are quarantined as delivered),
     check the quarantine threshold, bulk-load rows and quarantine, advance the manifest, move the
     checkpoint — commit all of it or none of it (design invariant 4).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import os
import threading
import time as clock
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

from evident import faults
from evident.control.batches import BatchRef, current_state, receive, transition, utcnow
from evident.engines import Engine
from evident.errors import BatchRejected, ContractChanged, EvidentError
from evident.land.contracts import Contract, current_contract_id
from evident.land.keys import combine_checksums
from evident.land.quarantine import Quarantined, raw_text
from evident.land.raw_tables import QUARANTINE_COLUMNS, RawTable
from evident.land.records import CsvRecord, raw_bytes, read_records
from evident.land.validation import KEY, PAYLOAD, Rejection, Row, Validator
from evident.retry import with_retry

log = logging.getLogger(__name__)
PARALLEL_MIN_BYTES = 16 << 20  # below this much input, validation stays in the main process
UNEXPECTED = "unexpected error while validating this record"


@dataclass
class PreparedBatch:
    """A validated batch, ready to land on any engine."""

    ref: BatchRef
    rows: list[Row]
    lines: list[int]  # physical line of each row
    rejected: list[Quarantined]
    rows_in: int
    duplicates_in_batch: int
    # (line, key, payload) of each later delivery of a key already in `rows` (exact copy or in-batch conflict):
    # when the first delivery turns out to conflict with a landed row, these are judged against that row too.
    later: list[tuple[int, str, str]]
    # The file's bytes, which the landing process holds anyway (a worker sends the batch back without them): a
    # row found to conflict with a landed row is quarantined with its line as delivered, read again from here.
    # (Re-reading costs a split of the file, only for a batch with such conflicts; keeping every row's line, or
    # its offsets, would cost memory and pickling on every batch.)
    data: bytes | None = field(default=None, repr=False)

    def raw_texts(self, line_numbers: set[int]) -> dict[int, str]:
        """Raw text of the records at these physical lines, exactly as delivered (quarantine.raw_text)."""
        if self.data is None:
            raise RuntimeError(f"{self.ref.source_file}: the prepared batch lost its file's bytes")
        return {number: raw_text(raw_bytes(record)) for number, record in read_records(self.ref.source_file, self.data)
                if number in line_numbers}


@dataclass
class LandOutcome:
    engine: str
    source_file: str
    batch_id: str
    status: str  # landed | unchanged | rejected | previously_rejected
    rows_in: int = 0
    rows_landed: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    message: str = ""
    reasons: dict[str, int] = field(default_factory=dict)


def batch_id_for(source_file: str, sha256: str) -> str:
    return hashlib.sha256(f"{source_file}\n{sha256}".encode()).hexdigest()[:32]


def prepare(path: Path, source_file: str, data: bytes, contract: Contract, code_revision: str) -> PreparedBatch:
    sha = hashlib.sha256(data).hexdigest()
    ref = BatchRef(batch_id_for(source_file, sha), source_file, sha, len(data), contract.contract_id, code_revision,
                   contract.name)
    validator = Validator(contract)
    from_json, from_csv = validator.from_json_line, validator.from_csv_record
    rows: list[Row] = []
    lines: list[int] = []
    rejected: list[Quarantined] = []
    first_line_of: dict[str, int] = {}
    payload_of: dict[str, str] = {}
    later: list[tuple[int, str, str]] = []
    rows_in = duplicates = unexpected = 0
    for line_number, record in read_records(path, data):
        rows_in += 1
        try:
            row = from_json(record) if isinstance(record, bytes) else from_csv(record)
        except Rejection as rej:
            rejected.append(Quarantined(line_number, rej.reason, rej.message, _raw(record)))
            continue
        except Exception as exc:  # the barrier: no record, however crafted, stops the land (DESIGN)
            if not unexpected:  # the first one with its traceback; the rest are in the quarantine
                log.warning("%s line %d: %s", source_file, line_number, UNEXPECTED, exc_info=True)
            unexpected += 1
            rejected.append(Quarantined(line_number, "invalid_value", f"{UNEXPECTED}: {_describe(exc)}",
                                        _raw(record)))
            continue
        key, payload = row[KEY], row[PAYLOAD]
        seen = payload_of.get(key)
        if seen is None:
            payload_of[key] = payload
            first_line_of[key] = line_number
            rows.append(row)
            lines.append(line_number)
        else:
            later.append((line_number, key, payload))
            if seen == payload:
                duplicates += 1
            else:
                rejected.append(Quarantined(
                    line_number, "conflicting_duplicate",
                    f"same idempotency key as line {first_line_of[key]} of this file with a different payload; "
                    "the first delivery stays", _raw(record), key))
    return PreparedBatch(ref, rows, lines, rejected, rows_in, duplicates, later, data)


def _describe(exc: Exception) -> str:
    try:
        text = str(exc)
    except Exception:  # an exception whose message itself fails
        text = "(no message)"
    return f"{type(exc).__name__}: {text[:500]}"


def _raw(record: bytes | CsvRecord) -> str:
    return raw_text(raw_bytes(record))


def needs_landing(engine: Engine, source_file: str, sha256: str, contract: Contract) -> str | None:
    """None when this engine must land the file; otherwise the status explaining why not."""
    row = engine.fetchone("select source_sha256 from evident.checkpoints where source_file = %s", [source_file])
    if row and row[0] == sha256:
        return "unchanged"
    batch = engine.fetchone("select state, failure_reason, contract_id from evident.batches where batch_id = %s",
                            [batch_id_for(source_file, sha256)])
    if batch is None or batch[0] in ("received", "validated"):
        return None
    if batch[0] != "failed":
        return "unchanged"  # this very content landed before (the file changed and changed back)
    if (batch[1] or "").startswith(BatchRejected.reason) and batch[2] == contract.contract_id:
        return "previously_rejected"
    return None


def land_batch(engine: Engine, batch: PreparedBatch, contract: Contract, run_id: str) -> LandOutcome:
    """Land one prepared batch on one engine in one transaction; retried as a whole on transient faults."""
    ref = batch.ref
    receive(engine, ref, run_id)
    with engine.transaction():
        transition(engine, ref.batch_id, "validated", run_id)
    faults.point(f"land.{engine.name}.validated")
    try:
        return _land_transaction(engine, batch, contract, run_id)
    except (BatchRejected, ContractChanged) as exc:
        _record_failure(engine, batch, contract, run_id, exc)
        raise


def _land_transaction(engine: Engine, batch: PreparedBatch, contract: Contract, run_id: str) -> LandOutcome:
    ref = batch.ref
    table = RawTable(contract)
    with engine.transaction():
        table.evolve(engine)  # a compatible new contract version adds its columns with its first batch
        stage = engine.stage_keys([(r[KEY], r[PAYLOAD], line) for r, line in zip(batch.rows, batch.lines)])
        # key → None when the landed row has this batch's payload for it, else the landed row's payload
        landed_before = dict(engine.fetchall(
            "select s.idempotency_key, case when r.payload_sha256 = s.payload_sha256 then null "
            f"else r.payload_sha256 end from {stage} s "
            f"join {table.name} r on r.idempotency_key = s.idempotency_key"))
        rejected, conflicts, duplicates = _against_landed(batch, landed_before)
        quarantined = sorted(rejected + conflicts, key=lambda q: q.line_number)
        _check_threshold(batch, quarantined, contract)
        new = [(row, line) for row, line in zip(batch.rows, batch.lines) if row[KEY] not in landed_before]
        land_seq = engine.fetchvalue("select coalesce(max(land_seq), 0) + 1 from evident.batches")
        now = utcnow()
        _store_quarantine(engine, table, ref, quarantined, now)
        faults.point(f"land.{engine.name}.mid_transaction")
        engine.bulk_insert(table.name, table.column_names, [
            (*r, ref.batch_id, land_seq, ref.source_file, line, ref.contract_id, now) for r, line in new],
            table.column_types)
        if current_contract_id(contract) != ref.contract_id:
            raise ContractChanged(
                f"{ref.source_file}: contract {contract.name} v{contract.version} changed while the batch was "
                f"landing (pinned {ref.contract_id}); nothing was landed for it")
        at = table.partition_position
        partition_values = [r[at] for r, _ in new if r[at] is not None]
        window = partition_window(partition_values)
        transition(
            engine, ref.batch_id, "landed", run_id,
            land_seq=land_seq, rows_in=batch.rows_in, rows_landed=len(new), rows_quarantined=len(quarantined),
            rows_duplicate=duplicates, landed_checksum=combine_checksums(r[PAYLOAD] for r, _ in new),
            min_event_ts=window[0], max_event_ts=window[1],
            event_dates=",".join(sorted({_day(v).isoformat() for v in partition_values})),
        )
        engine.execute(
            "insert into evident.checkpoints (source_file, source_sha256, batch_id, land_seq, landed_at) "
            "values (%s, %s, %s, %s, %s) on conflict (source_file) do update set "
            "source_sha256 = excluded.source_sha256, batch_id = excluded.batch_id, "
            "land_seq = excluded.land_seq, landed_at = excluded.landed_at",
            [ref.source_file, ref.source_sha256, ref.batch_id, land_seq, now])
        faults.point(f"land.{engine.name}.before_commit")
    return LandOutcome(engine.name, ref.source_file, ref.batch_id, "landed", batch.rows_in, len(new),
                       len(quarantined), duplicates, reasons=_reason_counts(quarantined))


def _against_landed(batch: PreparedBatch, landed_before: dict[str, str | None]
                    ) -> tuple[list[Quarantined], list[Quarantined], int]:
    """The batch's quarantine, its conflicts with landed rows and its duplicate count, once the landed rows are
    known. First delivery wins: a record is judged against the landed row of its key if there is one, else
    against its key's first delivery in this batch; the same payload is a duplicate, another is a conflict."""
    duplicates = batch.duplicates_in_batch + sum(1 for payload in landed_before.values() if payload is None)
    conflicting = {key: payload for key, payload in landed_before.items() if payload is not None}
    if not conflicting:
        return batch.rejected, [], duplicates
    found = [(line, row[KEY]) for row, line in zip(batch.rows, batch.lines) if row[KEY] in conflicting]
    in_batch_conflicts = {q.line_number for q in batch.rejected if q.reason_code == "conflicting_duplicate"}
    same_as_landed: set[int] = set()
    for line, key, payload in batch.later:
        landed = conflicting.get(key)
        if landed is None:
            continue
        if payload == landed:  # "conflicts" with this batch's first delivery, but is the landed row again
            same_as_landed.add(line)
            duplicates += 1
        elif line not in in_batch_conflicts:  # a copy of a first delivery that conflicts with the landed row
            found.append((line, key))
            duplicates -= 1
    texts = batch.raw_texts({line for line, _ in found})
    conflicts = [Quarantined(line, "conflicting_duplicate",
                             "idempotency key already landed with a different payload (landed row stays)",
                             texts[line], key) for line, key in found]
    rejected = [q for q in batch.rejected if q.line_number not in same_as_landed] if same_as_landed else batch.rejected
    return rejected, conflicts, duplicates


def _store_quarantine(engine: Engine, table: RawTable, ref: BatchRef, quarantined: list[Quarantined],
                      now: datetime) -> None:
    """The batch's quarantine rows, replacing those of an earlier attempt at the same batch."""
    engine.execute(f"delete from {table.quarantine} where batch_id = %s", [ref.batch_id])
    engine.bulk_insert(table.quarantine, QUARANTINE_COLUMNS,
                       [q.as_row(ref.batch_id, ref.source_file, ref.contract_id, now) for q in quarantined])


def partition_window(values: list) -> tuple[datetime | None, datetime | None]:
    """The first and last instant of a batch's partition values (dates as their midnight)."""
    if not values:
        return None, None
    lo, hi = min(values), max(values)
    return (lo if isinstance(lo, datetime) else datetime.combine(lo, time.min),
            hi if isinstance(hi, datetime) else datetime.combine(hi, time.min))


def _day(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _reason_counts(quarantined: list[Quarantined]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for q in quarantined:
        counts[q.reason_code] = counts.get(q.reason_code, 0) + 1
    return dict(sorted(counts.items()))


def _check_threshold(batch: PreparedBatch, quarantined: list[Quarantined], contract: Contract) -> None:
    if not batch.rows_in:
        return
    share = len(quarantined) / batch.rows_in
    if share > contract.max_quarantine_share:
        reasons = ", ".join(f"{k}: {v}" for k, v in _reason_counts(quarantined).items())
        raise BatchRejected(
            f"{batch.ref.source_file}: {len(quarantined)} of {batch.rows_in} records "
            f"({share:.1%}) quarantined, over the contract's {contract.max_quarantine_share:.1%} limit "
            f"({reasons}); none of its rows were landed")


def _record_failure(engine: Engine, batch: PreparedBatch, contract: Contract, run_id: str, exc: EvidentError) -> None:
    """Mark the batch failed; keep the quarantine evidence of a threshold failure (nothing lands in raw)."""
    ref = batch.ref
    with engine.transaction():
        if isinstance(exc, BatchRejected):
            _store_quarantine(engine, RawTable(contract), ref, batch.rejected, utcnow())
        if current_state(engine, ref.batch_id) != "failed":
            transition(engine, ref.batch_id, "failed", run_id, f"{exc.reason}: {exc}", rows_in=batch.rows_in,
                       rows_quarantined=len(batch.rejected))


@dataclass
class _Planned:
    """A source file read and checked against every engine's checkpoint; `prepared` yields its PreparedBatch."""

    source_file: str
    outcomes: list[LandOutcome]  # engines with nothing to do, and why
    todo: list[Engine]
    prepared: _Fallback | _Inline | None = None


def _plan(engines: list[Engine], landing_dir: Path, path: Path, contract: Contract, code_revision: str,
          submit) -> _Planned:
    source_file = path.relative_to(landing_dir).as_posix()
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    plan = _Planned(source_file, [], [])
    for engine in engines:
        skip = with_retry(lambda: needs_landing(engine, source_file, sha, contract),
                          what=f"{engine.name}: reading the checkpoint of {source_file}")
        if skip:
            plan.outcomes.append(LandOutcome(engine.name, source_file, batch_id_for(source_file, sha), skip))
        else:
            plan.todo.append(engine)
    if plan.todo:
        plan.prepared = submit(path, source_file, data, contract, code_revision)
    return plan


def land_files(engines: list[Engine], landing_dir: Path, routed: list[tuple[Path, Contract]], run_id: str,
               code_revision: str, workers: int | None = None) -> list[LandOutcome]:
    """Land the files (each with its source's pinned contract) in the order given. Validation (the
    Python-bound part) of the next files runs in `workers` other processes while this one lands; 0 =
    everything here, None = prepare_workers decides.

    Batches still land one at a time and in path order, so "first delivery wins" is unchanged; a worker only
    computes a PreparedBatch and touches no database, lock or file other than its input.
    """
    workers = prepare_workers([path for path, _ in routed], workers)
    outcomes: list[LandOutcome] = []
    with _preparer(workers) as submit:
        window: deque[tuple[_Planned, Contract]] = deque()
        for path, contract in routed:
            window.append((_plan(engines, landing_dir, path, contract, code_revision, submit), contract))
            if len(window) > workers:
                outcomes += _land_planned(*window.popleft(), run_id)
        while window:
            outcomes += _land_planned(*window.popleft(), run_id)
    return outcomes


def prepare_workers(paths: list[Path], configured: int | None = None) -> int:
    """Worker processes for validation: as configured (EVIDENT_LAND_WORKERS), else one per core when there is
    enough input to pay for starting them (a process costs ~0.5 s to start), else none."""
    if configured is not None:
        return configured
    cores = os.cpu_count() or 1
    if cores < 2 or sum(p.stat().st_size for p in paths) < PARALLEL_MIN_BYTES:
        return 0
    return min(cores, 4)


class _Inline:
    """A preparation done here, when its result is asked for (so only one file's rows are held at a time)."""

    def __init__(self, *args):
        self.args = args

    def result(self) -> PreparedBatch:
        return prepare(*self.args)


@contextlib.contextmanager
def _preparer(workers: int):
    if workers <= 0:
        yield _Inline
        return
    # spawn, not fork: a forked child would inherit this process's DuckDB threads and the warehouse lock's fd
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(os.getpid(),))
    try:
        yield lambda *args: _Fallback(pool.submit(_prepare_in_worker, *args), args)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _exit_with_parent(parent_pid: int) -> None:
    """In a worker: exit when the landing process is gone (killed with -9, its workers would wait forever)."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            clock.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _prepare_in_worker(*args) -> PreparedBatch:
    """prepare() in a worker: the file's bytes stay behind (the landing process has them; see _Fallback)."""
    batch = prepare(*args)
    batch.data = None
    return batch


class _Fallback:
    """A worker's preparation; if the pool broke (a worker killed, out of memory), it is done here instead."""

    def __init__(self, future: Future, args: tuple):
        self.future, self.args = future, args

    def result(self) -> PreparedBatch:
        try:
            batch = self.future.result()
            batch.data = self.args[2]
            return batch
        except BrokenProcessPool:
            log.warning("a validation worker died; validating %s in the main process", self.args[1])
            return prepare(*self.args)


def _land_planned(plan: _Planned, contract: Contract, run_id: str) -> list[LandOutcome]:
    outcomes = plan.outcomes
    if plan.prepared is None:
        return outcomes
    batch = plan.prepared.result()
    for engine in plan.todo:
        try:
            outcome = with_retry(lambda: land_batch(engine, batch, contract, run_id),
                                 what=f"{engine.name}: landing {plan.source_file}")
        except (BatchRejected, ContractChanged) as exc:
            outcome = LandOutcome(engine.name, plan.source_file, batch.ref.batch_id, "rejected", batch.rows_in,
                                  rows_quarantined=len(batch.rejected), message=f"{exc.reason}: {exc}",
                                  reasons=_reason_counts(batch.rejected))
        outcomes.append(outcome)
        faults.point(f"land.after_{engine.name}")
    return outcomes
