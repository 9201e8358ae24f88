"""A source file cut into chunks, and each chunk validated into what an engine loads: an Arrow table of rows
and the chunk's quarantine.

Chunks let a big file be validated on every core and streamed into the engines while it is read, so memory
holds a few chunks, never the file. A JSONL chunk is a run of whole lines (bytes and the number of its first
physical line: a worker reads no more than it is sent); a CSV chunk is a run of records read by one reader
(a quoted field may span lines, so only a reader that saw every line before it knows where a record starts).

Validation of a chunk judges each record on its own (DESIGN's reason codes, the barrier around each record)
and finds the keys delivered more than once in the chunk (a dict of the chunk's keys, never of the file's).
Whether a key is new depends on the landed rows and the other chunks: the engine decides it, set-based
(evident.land.stage).
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa

from evident.engines import arrow_schema
from evident.errors import Rejection
from evident.land.contracts import Contract
from evident.land.quarantine import Quarantined, raw_text
from evident.land.raw_tables import RawTable
from evident.land.records import CsvRecord, Record, csv_rows, is_csv, jsonl_lines, raw_bytes, stream_records
from evident.land.validation import KEY, PAYLOAD, Validator

log = logging.getLogger(__name__)
CHUNK_BYTES = 4 << 20  # a JSONL chunk: about 16k events of the reference source
CSV_CHUNK_RECORDS = 16384
UNEXPECTED = "unexpected error while validating this record"
_READ_BYTES = 1 << 20


@dataclass
class Chunk:
    """Records of one source file: whole JSONL lines from `first_line` on, or CSV records."""

    first_line: int = 1
    data: bytes = b""
    file_start: bool = True
    csv_records: list[tuple[int, CsvRecord]] | None = None

    def records(self) -> Iterator[Record]:
        if self.csv_records is not None:
            return iter(self.csv_records)
        return jsonl_lines(self.data, self.first_line, self.file_start)


class Later(NamedTuple):
    """A later delivery of a key delivered before in the same chunk."""

    line: int
    key: str
    payload: str
    first_line: int  # the key's first delivery in the chunk
    raw_text: str | None  # as delivered when its payload differs from the first delivery's, else None


@dataclass
class ValidatedChunk:
    rows: pa.Table  # the first delivery of each key in the chunk (RawTable.stage_columns)
    later: list[Later]
    rejected: list[Quarantined]
    rows_in: int
    checksum: int  # sum of the rows' payload hashes (see keys.checksum_text)
    first_unexpected: str | None = field(default=None, repr=False)  # the traceback of the first, to log


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_READ_BYTES):
            digest.update(block)
    return digest.hexdigest()


def cut(path: Path, chunk_bytes: int | None = None, csv_records: int | None = None) -> Iterator[Chunk]:
    """The file's chunks, in order, read as they are asked for (sizes: CHUNK_BYTES, CSV_CHUNK_RECORDS)."""
    chunk_bytes, csv_records = chunk_bytes or CHUNK_BYTES, csv_records or CSV_CHUNK_RECORDS
    if is_csv(path):
        batch: list[tuple[int, CsvRecord]] = []
        with open(path, "rb") as lines:
            for record in csv_rows(iter(lines)):
                batch.append(record)
                if len(batch) >= csv_records:
                    yield Chunk(csv_records=batch)
                    batch = []
        if batch:
            yield Chunk(csv_records=batch)
        return
    first_line, file_start, carry = 1, True, b""
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk_bytes)
            if not block:  # end of file: the last line may have no line end
                if carry:
                    yield Chunk(first_line, carry, file_start)
                return
            data = carry + block
            end = data.rfind(b"\n")
            if end < 0:  # a line longer than a chunk: read on
                carry = data
                continue
            whole, carry = data[:end + 1], data[end + 1:]
            yield Chunk(first_line, whole, file_start)
            first_line += whole.count(b"\n")
            file_start = False


# One validator per contract in each process (compiling the fast path costs more than a chunk's worth of lines).
_VALIDATORS: dict[str, tuple[Validator, pa.Schema]] = {}


def validate_chunk(contract: Contract, chunk: Chunk) -> ValidatedChunk:
    cached = _VALIDATORS.get(contract.contract_id)
    if cached is None:
        cached = _VALIDATORS[contract.contract_id] = (Validator(contract), stage_schema(contract))
    validator, schema = cached
    from_json, from_csv = validator.from_json_line, validator.from_csv_record
    rows: list[tuple] = []
    lines: list[int] = []
    first: dict[str, tuple[int, str]] = {}  # key → line and payload of its first delivery in this chunk
    later: list[Later] = []
    rejected: list[Quarantined] = []
    rows_in = 0
    first_unexpected = None
    with _no_cycle_collection():
        for line_number, record in chunk.records():
            rows_in += 1
            try:
                row = from_json(record) if isinstance(record, bytes) else from_csv(record)
            except Rejection as rej:
                rejected.append(Quarantined(line_number, rej.reason, rej.message, _raw(record)))
                continue
            except Exception as exc:  # the barrier: no record, however crafted, stops the land (DESIGN)
                if first_unexpected is None:
                    first_unexpected = f"line {line_number}: {UNEXPECTED}\n{traceback.format_exc()}"
                rejected.append(Quarantined(line_number, "invalid_value", f"{UNEXPECTED}: {_describe(exc)}",
                                            _raw(record)))
                continue
            key, payload = row[KEY], row[PAYLOAD]
            seen = first.get(key)
            if seen is None:
                first[key] = (line_number, payload)
                rows.append(row)
                lines.append(line_number)
            else:
                later.append(Later(line_number, key, payload, seen[0], None if payload == seen[1] else _raw(record)))
    checksum = sum(int(row[PAYLOAD], 16) for row in rows)
    return ValidatedChunk(to_arrow(schema, rows, lines), later, rejected, rows_in, checksum, first_unexpected)


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Validation allocates millions of small acyclic objects; the cycle collector would walk them again and
    again (a fifth of the time), and has nothing to find."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def stage_schema(contract: Contract) -> pa.Schema:
    return arrow_schema(RawTable(contract).stage_columns)


def to_arrow(schema: pa.Schema, rows: list[tuple], lines: list[int]) -> pa.Table:
    """Rows (key, *fields, payload) and their lines as columns of the stage's types. Read as one struct array
    (Arrow takes the tuples as they are): transposing them in Python first cost three times as much."""
    fields = [schema.field(i) for i in range(len(schema) - 1)]
    arrays = pa.array(rows, type=pa.struct(fields)).flatten()
    arrays.append(pa.array(lines, type=schema.field(len(schema) - 1).type))
    return pa.Table.from_arrays(arrays, schema=schema)


def raw_texts_at(path: Path, line_numbers: set[int]) -> dict[int, str]:
    """Raw text of the records at these physical lines, exactly as delivered (quarantine.raw_text), read from
    the file again: only a batch with conflicting duplicates needs them."""
    found: dict[int, str] = {}
    if not line_numbers:
        return found
    last = max(line_numbers)
    for number, record in stream_records(path):
        if number in line_numbers:
            found[number] = _raw(record)
        if number >= last:
            break
    return found


def _raw(record: bytes | CsvRecord) -> str:
    return raw_text(raw_bytes(record))


def _describe(exc: Exception) -> str:
    try:
        text = str(exc)
    except Exception:  # an exception whose message itself fails
        text = "(no message)"
    return f"{type(exc).__name__}: {text[:500]}"
