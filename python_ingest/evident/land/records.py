"""Read source files into raw records: (line number, bytes) for JSONL, (line number, dict) for CSV.

Whole-line rules from the contract live here: a BOM at the start of a file is ignored, CRLF is accepted,
blank lines are skipped and not counted (but do count in physical line numbers).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterator

BOM = b"\xef\xbb\xbf"
SUPPORTED_SUFFIXES = (".jsonl", ".ndjson", ".csv")


def source_files(landing_dir: Path) -> list[Path]:
    """Every supported file under the landing dir, in lexicographic path order (first delivery wins)."""
    if not landing_dir.is_dir():
        return []
    found = [p for p in landing_dir.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES]
    return sorted(found, key=lambda p: p.relative_to(landing_dir).as_posix())


def jsonl_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    if data.startswith(BOM):
        data = data[len(BOM):]
    for number, line in enumerate(data.split(b"\n"), start=1):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.strip():
            yield number, line


def csv_rows(data: bytes) -> Iterator[tuple[int, bytes | dict]]:
    """CSV with a header row naming contract fields; a row that cannot be decoded is yielded as bytes."""
    if data.startswith(BOM):
        data = data[len(BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Fall back to line-wise decoding so each bad line is quarantined on its own.
        yield from _csv_rows_linewise(data)
        return
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    for row in reader:
        if header is None:
            header = [h.strip() for h in row]
            continue
        if not any(cell.strip() for cell in row):
            continue
        yield reader.line_num, _csv_record(header, row)


def _csv_rows_linewise(data: bytes) -> Iterator[tuple[int, bytes | dict]]:
    header: list[str] | None = None
    for number, line in jsonl_lines(data):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            yield number, line
            continue
        row = next(csv.reader([text]), [])
        if header is None:
            header = [h.strip() for h in row]
            continue
        yield number, _csv_record(header, row)


def _csv_record(header: list[str], row: list[str]) -> dict:
    if len(row) != len(header):
        return {"__csv_error__": f"row has {len(row)} cells, header has {len(header)}"}
    # An empty cell means absent (CSV cannot tell null from empty).
    return {name: cell for name, cell in zip(header, row) if cell != ""}


def read_records(path: Path, data: bytes) -> Iterator[tuple[int, bytes | dict]]:
    if path.suffix.lower() == ".csv":
        return csv_rows(data)
    return jsonl_lines(data)
