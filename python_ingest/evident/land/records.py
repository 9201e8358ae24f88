"""Read source files into raw records: (line number, record), where record is the line's bytes (JSONL) or a
CsvRecord (CSV); either way the record's bytes are exactly as delivered, without the line end.

Whole-line rules from the contract live here: a BOM at the start of a file is ignored, CRLF is accepted,
lines of only whitespace are skipped and not counted (but do count in physical line numbers). Nothing here
raises on bad input: a record that cannot be read is still yielded, with what is wrong with it.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

BOM = b"\xef\xbb\xbf"
# csv's default field limit (128 KiB) would make a legal cell an error; record size is the contract's rule.
_CSV_FIELD_LIMIT = (1 << 31) - 1


class CsvRecord(NamedTuple):
    """One CSV record (a row, or what stood where a row should be)."""

    raw: bytes  # as delivered, without its line end (a quoted field may span lines)
    values: dict[str, str] | None  # header name → cell, empty cells left out (= absent); None when malformed
    problem: str | None = None  # why it is not a row of this file (→ malformed_csv)
    utf8: bool = True  # False: raw is not valid UTF-8 (→ invalid_utf8)


Record = tuple[int, "bytes | CsvRecord"]


def is_blank(line: bytes) -> bool:
    """A line of only whitespace (skipped, not counted)."""
    return not line.strip()


def jsonl_lines(data: bytes, first_line: int = 1, file_start: bool = True) -> Iterator[tuple[int, bytes]]:
    """(physical line number, line) of every non-blank line of `data`: a whole file, or whole lines of one
    starting at physical line `first_line` (a BOM is only skipped at the start of the file)."""
    return _numbered(data.split(b"\n"), first_line, file_start)


def _numbered(lines: Iterable[bytes], first_line: int, file_start: bool) -> Iterator[tuple[int, bytes]]:
    """Physical lines (with or without their line end) → (number, line without CRLF/LF) of the non-blank ones."""
    for number, line in enumerate(lines, start=first_line):
        if file_start and number == first_line and line.startswith(BOM):
            line = line[len(BOM):]
        line = line[:-1] if line.endswith(b"\n") else line
        line = line[:-1] if line.endswith(b"\r") else line
        if line.strip():
            yield number, line


class _Line(NamedTuple):
    number: int
    text: bytes  # with its line end
    utf8: bool


class _Feed:
    """Physical lines for csv.reader, remembering which ones the current record used (its raw bytes)."""

    def __init__(self, lines: Iterator[bytes]):
        self.lines = lines
        self.number = 0
        self.used: list[_Line] = []

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        chunk = next(self.lines)
        if self.number == 0 and chunk.startswith(BOM):
            chunk = chunk[len(BOM):]
        self.number += 1
        try:
            text, utf8 = chunk.decode("utf-8"), True
        except UnicodeDecodeError:  # keep going: the record is quarantined as invalid_utf8, its bytes kept
            text, utf8 = chunk.decode("utf-8", "surrogateescape"), False
        self.used.append(_Line(self.number, chunk, utf8))
        return text

    def raw(self) -> bytes:
        """The current record's bytes as delivered, without the line end of its last line."""
        raw = b"".join(line.text for line in self.used)
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        return raw[:-1] if raw.endswith(b"\r") else raw


def csv_rows(data: bytes | Iterator[bytes]) -> Iterator[tuple[int, CsvRecord]]:
    """CSV with a header row naming contract fields: (first physical line, record) per record. `data`: the
    file's bytes, or its physical lines (with their line ends) as read from the file."""
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
    feed = _Feed(iter(io.BytesIO(data)) if isinstance(data, bytes) else data)
    reader = csv.reader(feed, strict=True)
    header: list[str] | None = None
    header_problem: str | None = None
    while True:
        feed.used = []
        problem = None
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            cells, problem = [], f"not valid CSV: {exc}"
        if not feed.used:
            break
        first = feed.used[0]
        raw = feed.raw()
        if not raw.strip():
            continue
        utf8 = all(line.utf8 for line in feed.used)
        if header is None:
            header = [h.strip() for h in cells]
            doubled = sorted({h for h in header if header.count(h) > 1})
            if problem or not utf8 or doubled:
                header_problem = (f"the header (line {first.number}) is unusable: "
                                  + (problem or ("not valid UTF-8" if not utf8 else f"it names {doubled} twice")))
            continue
        if problem is None:
            problem = header_problem
        if problem is None and len(cells) != len(header):
            problem = f"row has {len(cells)} cells, header has {len(header)}"
        values = None if problem else {name: cell for name, cell in zip(header, cells) if cell != ""}
        yield first.number, CsvRecord(raw, values, problem, utf8)


def read_records(path: Path | str, data: bytes) -> Iterator[Record]:
    if is_csv(path):
        return csv_rows(data)
    return jsonl_lines(data)


def stream_records(path: Path) -> Iterator[Record]:
    """read_records of a file read as it goes (memory: one record, not the file)."""
    with open(path, "rb") as lines:
        if is_csv(path):
            yield from csv_rows(iter(lines))
            return
        yield from _numbered(lines, 1, True)


def is_csv(path: Path | str) -> bool:
    return str(path).lower().endswith(".csv")


def raw_bytes(record: bytes | CsvRecord) -> bytes:
    """A record's bytes as delivered."""
    return record if isinstance(record, bytes) else record.raw
