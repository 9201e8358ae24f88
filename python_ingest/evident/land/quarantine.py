"""Quarantine records: a rejected record with its raw text, file, line, reason code and message."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

MAX_MESSAGE_CHARS = 1000


@dataclass(frozen=True)
class Quarantined:
    line_number: int
    reason_code: str
    message: str
    raw_text: str
    idempotency_key: str | None = None

    def as_row(self, batch_id: str, source_file: str, contract_id: str, at: datetime) -> tuple:
        # Order matches schema.QUARANTINE_COLUMNS.
        return (batch_id, self.line_number, source_file, contract_id, self.reason_code, storable(self.message),
                self.raw_text, self.idempotency_key, at)


def raw_text(record: bytes | str) -> str:
    """Storable text of a raw record: invalid UTF-8 bytes escaped as \\xNN, NUL (which Postgres cannot store)
    as \\x00, so the original bytes can still be read off the quarantine row."""
    text = record if isinstance(record, str) else record.decode("utf-8", errors="backslashreplace")
    return text.replace("\x00", "\\x00")


def storable(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """A message both engines can store whatever it quotes: no lone surrogates, no NUL, of bounded length."""
    if len(message) > limit:
        message = message[:limit] + f"… ({len(message)} characters)"
    if not message.isascii():
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return message.replace("\x00", "\\x00")
