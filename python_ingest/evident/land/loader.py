"""Landing: source files → validated, keyed rows in raw.<source>, exactly once, on every configured engine.

Per file (= batch, identified by path + content SHA-256):
  1. hash it (read as a stream); an engine whose checkpoint already holds this content has nothing to do;
  2. cut it into chunks and validate them on every core (evident.land.chunks): each record is judged on its
     own, with a barrier around it (an unexpected error quarantines that record as invalid_value, naming the
     error), so no record, however crafted, stops the land;
  3. stream the validated chunks into one open transaction per engine, all engines at once (one thread
     each); rejected records go to the quarantine as they come. Memory holds a few chunks, not the file;
  4. each engine lands each chunk's new rows as it comes and judges duplicates and conflicting duplicates
     set-based against the batch itself and the landed rows, first delivery winning (evident.land.stage);
     at the end of the file: the quarantine threshold, the manifest, the checkpoint — committed together
     with the rows or not at all (design invariant 4). A batch over the threshold commits only its
     evidence: the quarantine rows and its failed state; none of its rows stay in raw.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import os
import queue
import threading
import time as clock
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from evident import faults, logs
from evident.control.batches import BatchRef, current_state, receive, transition, utcnow
from evident.engines import Engine
from evident.errors import BatchRejected, ContractChanged
from evident.land.chunks import Chunk, ValidatedChunk, cut, file_sha256, raw_texts_at, validate_chunk
from evident.land.contracts import Contract, current_contract_id
from evident.land.keys import checksum_text
from evident.land.quarantine import Quarantined
from evident.land.raw_tables import QUARANTINE_COLUMNS, RawTable
from evident.land.stage import BatchStage, Conflict
from evident.retry import is_transient, raise_classified, with_retry

log = logging.getLogger(__name__)
PARALLEL_MIN_BYTES = 16 << 20  # below this much input, validation stays in the main process
# Per engine: how far validation may run ahead of the slowest engine. What the landing process holds is about
# this many chunks (and as many again in validation); with 16 it kept filling for most of a minute, so a 5M-line
# file peaked 25 % above a 1M-line one on Postgres; with 4 both peak alike, and land time is unchanged.
QUEUED_CHUNKS = 4

Validate = Callable[[Contract, Iterable[Chunk]], Iterator[ValidatedChunk]]


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


def land_files(engines: list[Engine], landing_dir: Path, routed: list[tuple[Path, Contract]], run_id: str,
               code_revision: str, workers: int | None = None) -> list[LandOutcome]:
    """Land the files (each with its source's pinned contract) one at a time, in the order given, so "first
    delivery wins" is deterministic. Chunks are validated in `workers` other processes (0 = here, None =
    prepare_workers decides); a worker touches no database, lock or file other than the chunk it is sent."""
    outcomes: list[LandOutcome] = []
    with _validator(prepare_workers([path for path, _ in routed], workers)) as validate:
        for path, contract in routed:
            outcomes += _land_file(engines, landing_dir, path, contract, run_id, code_revision, validate)
            logs.advance(files=1)
    return outcomes


def _land_file(engines: list[Engine], landing_dir: Path, path: Path, contract: Contract, run_id: str,
               code_revision: str, validate: Validate) -> list[LandOutcome]:
    source_file = path.relative_to(landing_dir).as_posix()
    sha = file_sha256(path)
    ref = BatchRef(batch_id_for(source_file, sha), source_file, sha, path.stat().st_size, contract.contract_id,
                   code_revision, contract.name)
    outcomes: list[LandOutcome] = []
    todo: list[Engine] = []
    for engine in engines:
        skip = with_retry(lambda: needs_landing(engine, source_file, sha, contract),
                          what=f"{engine.name}: reading the checkpoint of {source_file}")
        if skip:
            outcomes.append(LandOutcome(engine.name, source_file, ref.batch_id, skip))
        else:
            todo.append(engine)
    if not todo:
        return outcomes
    attempts = _land_on(todo, path, ref, contract, run_id, validate)
    for engine in todo:
        what = f"{engine.name}: landing {source_file}"
        result = attempts[engine.name]
        if isinstance(result, Exception) and is_transient(result):
            log.warning("%s: transient fault (%s), landing it again", what, result)
            result = with_retry(lambda: _landed_or_raise(_land_on([engine], path, ref, contract, run_id, validate),
                                                         engine), what=what)
        elif isinstance(result, Exception):
            raise_classified(result, what)  # a configuration or database error, else the bug itself
        elif isinstance(result, BaseException):
            raise result
        outcomes.append(result)
        faults.point(f"land.after_{engine.name}")
    return outcomes


def _landed_or_raise(attempts: dict[str, LandOutcome | BaseException], engine: Engine) -> LandOutcome:
    result = attempts[engine.name]
    if isinstance(result, BaseException):
        raise result
    return result


def _land_on(engines: list[Engine], path: Path, ref: BatchRef, contract: Contract, run_id: str,
             validate: Validate) -> dict[str, LandOutcome | BaseException]:
    """One attempt at the batch on these engines, all at once: each engine's outcome, or what it raised."""
    writers = [_EngineWriter(engine, path, ref, contract, run_id) for engine in engines]
    for writer in writers:
        writer.start()
    complete = False
    try:
        for chunk in validate(contract, cut(path)):
            if chunk.first_unexpected:
                log.warning("%s %s", ref.source_file, chunk.first_unexpected)
            for writer in writers:
                writer.put(chunk)
            logs.advance(rows=chunk.rows_in)
        complete = True
    finally:  # an incomplete batch must not commit: the writers roll back
        for writer in writers:
            writer.put(_END if complete else _ABORT)
        for writer in writers:
            writer.join()
    return {w.engine.name: w.result for w in writers}


_END, _ABORT = object(), object()  # after the last chunk: judge and commit / roll back


@dataclass
class _Tally:
    rows_in: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, chunk: ValidatedChunk) -> None:
        self.rows_in += chunk.rows_in
        self.rejected += len(chunk.rejected)
        for q in chunk.rejected:
            self.count(q.reason_code)

    def count(self, reason: str, n: int = 1) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + n


class _EngineWriter(threading.Thread):
    """Lands one batch on one engine from the validated chunks it is handed, in its own transaction."""

    def __init__(self, engine: Engine, path: Path, ref: BatchRef, contract: Contract, run_id: str):
        super().__init__(name=f"land-{engine.name}", daemon=True)
        self.engine, self.path, self.ref, self.contract, self.run_id = engine, path, ref, contract, run_id
        self.chunks: queue.Queue[ValidatedChunk | object] = queue.Queue(QUEUED_CHUNKS)
        self.result: LandOutcome | BaseException = RuntimeError("the landing thread did not finish")
        self.ended = False

    def put(self, chunk: ValidatedChunk | object) -> None:
        self.chunks.put(chunk)

    def run(self) -> None:
        try:
            self.result = self._land()
        except BaseException as exc:  # handed to the main thread, which decides (retry, exit code)
            self.result = exc
        while not self.ended:  # after a failure: keep taking chunks so validation can finish
            self._next()

    def _next(self) -> ValidatedChunk | object:
        item = self.chunks.get()
        self.ended = item is _END or item is _ABORT
        return item

    def _stream(self) -> Iterator[ValidatedChunk]:
        while (item := self._next()) is not _END:
            if item is _ABORT:
                raise RuntimeError("validation of the batch stopped; its transaction is rolled back")
            yield item  # type: ignore[misc]

    def _land(self) -> LandOutcome:
        engine, ref = self.engine, self.ref
        receive(engine, ref, self.run_id)
        with engine.transaction():
            transition(engine, ref.batch_id, "validated", self.run_id)
        faults.point(f"land.{engine.name}.validated")
        tally = _Tally()
        try:
            with engine.transaction():
                return self._land_transaction(tally)
        except ContractChanged as exc:
            with engine.transaction():
                if current_state(engine, ref.batch_id) != "failed":
                    transition(engine, ref.batch_id, "failed", self.run_id, f"{exc.reason}: {exc}",
                               rows_in=tally.rows_in, rows_quarantined=tally.rejected)
            return self._rejected(exc, tally)

    def _land_transaction(self, tally: _Tally) -> LandOutcome:
        engine, ref, contract, run_id = self.engine, self.ref, self.contract, self.run_id
        table = RawTable(contract)
        now = utcnow()
        table.evolve(engine)  # a compatible new contract version adds its columns with its first batch
        land_seq = engine.fetchvalue("select coalesce(max(land_seq), 0) + 1 from evident.batches")
        stage = BatchStage(engine, table, ref.batch_id, land_seq, ref.source_file, ref.contract_id, now)
        engine.execute(f"delete from {table.quarantine} where batch_id = %s", [ref.batch_id])  # an earlier try's
        for chunk in self._stream():
            tally.add(chunk)
            stage.land(chunk)
            self._quarantine(table, chunk.rejected, now)
        faults.point(f"land.{engine.name}.mid_transaction")
        stage.judge()
        conflicts = self._conflicts(stage.conflicts)
        self._quarantine(table, conflicts, now)
        tally.count("conflicting_duplicate", len(conflicts))
        quarantined = tally.rejected + len(conflicts)
        if tally.rows_in and quarantined / tally.rows_in > contract.max_quarantine_share:
            stage.unland()
            rejection = BatchRejected(_over_threshold(ref, contract, quarantined, tally))
            transition(engine, ref.batch_id, "failed", run_id, f"{rejection.reason}: {rejection}",
                       rows_in=tally.rows_in, rows_quarantined=quarantined)
            return self._rejected(rejection, tally, quarantined)  # committed: the evidence stays
        if current_contract_id(contract) != ref.contract_id:
            raise ContractChanged(
                f"{ref.source_file}: contract {contract.name} v{contract.version} changed while the batch was "
                f"landing (pinned {ref.contract_id}); nothing was landed for it")
        first, last, days = stage.partitions()
        transition(
            engine, ref.batch_id, "landed", run_id,
            land_seq=land_seq, rows_in=tally.rows_in, rows_landed=stage.landed, rows_quarantined=quarantined,
            rows_duplicate=stage.duplicates, landed_checksum=checksum_text(stage.checksum),
            min_event_ts=first, max_event_ts=last, event_dates=",".join(day.isoformat() for day in days),
        )
        engine.execute(
            "insert into evident.checkpoints (source_file, source_sha256, batch_id, land_seq, landed_at) "
            "values (%s, %s, %s, %s, %s) on conflict (source_file) do update set "
            "source_sha256 = excluded.source_sha256, batch_id = excluded.batch_id, "
            "land_seq = excluded.land_seq, landed_at = excluded.landed_at",
            [ref.source_file, ref.source_sha256, ref.batch_id, land_seq, now])
        faults.point(f"land.{engine.name}.before_commit")
        return LandOutcome(engine.name, ref.source_file, ref.batch_id, "landed", tally.rows_in, stage.landed,
                           quarantined, stage.duplicates, reasons=dict(sorted(tally.reasons.items())))

    def _conflicts(self, found: list[Conflict]) -> list[Quarantined]:
        """Conflicting duplicates, quarantined with their lines as delivered (read from the file again when the
        chunk did not carry them)."""
        texts = raw_texts_at(self.path, {c.line for c in found if c.raw_text is None})
        return [Quarantined(c.line, "conflicting_duplicate",
                            "idempotency key already landed with a different payload (landed row stays)"
                            if c.first_line is None else
                            f"same idempotency key as line {c.first_line} of this file with a different payload; "
                            "the first delivery stays", c.raw_text if c.raw_text is not None else texts[c.line], c.key)
                for c in found]

    def _quarantine(self, table: RawTable, rejected: list[Quarantined], now) -> None:
        ref = self.ref
        self.engine.bulk_insert(table.quarantine, QUARANTINE_COLUMNS,
                                [q.as_row(ref.batch_id, ref.source_file, ref.contract_id, now) for q in rejected])

    def _rejected(self, exc: Exception, tally: _Tally, quarantined: int | None = None) -> LandOutcome:
        return LandOutcome(self.engine.name, self.ref.source_file, self.ref.batch_id, "rejected", tally.rows_in,
                           rows_quarantined=tally.rejected if quarantined is None else quarantined,
                           message=f"{getattr(exc, 'reason', 'error')}: {exc}",
                           reasons=dict(sorted(tally.reasons.items())))


def _over_threshold(ref: BatchRef, contract: Contract, quarantined: int, tally: _Tally) -> str:
    share = quarantined / tally.rows_in
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(tally.reasons.items()))
    return (f"{ref.source_file}: {quarantined} of {tally.rows_in} records ({share:.1%}) quarantined, over the "
            f"contract's {contract.max_quarantine_share:.1%} limit ({reasons}); none of its rows were landed")


def prepare_workers(paths: list[Path], configured: int | None = None) -> int:
    """Worker processes for validation: as configured (EVIDENT_LAND_WORKERS), else one per core when there is
    enough input to pay for starting them (a process costs ~0.5 s to start), else none."""
    if configured is not None:
        return configured
    cores = os.cpu_count() or 1
    if cores < 2 or sum(p.stat().st_size for p in paths) < PARALLEL_MIN_BYTES:
        return 0
    return min(cores, 4)


@contextlib.contextmanager
def _validator(workers: int) -> Iterator[Validate]:
    """validate(contract, chunks) → the validated chunks in order: here, or in a pool of worker processes."""
    if workers <= 0:
        yield lambda contract, chunks: (validate_chunk(contract, chunk) for chunk in chunks)
        return
    # spawn, not fork: a forked child would inherit this process's DuckDB threads and the warehouse lock's fd
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(os.getpid(),))
    try:
        yield lambda contract, chunks: _in_pool(pool, 2 * workers, contract, chunks)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _in_pool(pool: ProcessPoolExecutor, ahead: int, contract: Contract, chunks: Iterable[Chunk]
             ) -> Iterator[ValidatedChunk]:
    pending: deque[tuple[Future | None, Chunk]] = deque()
    broken = False

    def take() -> ValidatedChunk:
        nonlocal broken
        future, chunk = pending.popleft()
        if future is not None:
            try:
                return future.result()
            except BrokenProcessPool:  # a worker died (killed, out of memory): the rest is validated here
                if not broken:
                    log.warning("a validation worker died; validating the rest in the main process")
                broken = True
        return validate_chunk(contract, chunk)

    try:
        for chunk in chunks:
            future = None
            if not broken:
                try:
                    future = pool.submit(validate_chunk, contract, chunk)
                except BrokenProcessPool:
                    broken = True
            pending.append((future, chunk))
            if len(pending) >= ahead:
                yield take()
        while pending:
            yield take()
    finally:
        for future, _ in pending:
            if future is not None:
                future.cancel()


def _exit_with_parent(parent_pid: int) -> None:
    """In a worker: exit when the landing process is gone (killed with -9, its workers would wait forever)."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            clock.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
