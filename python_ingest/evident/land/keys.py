"""Idempotency keys and payload fingerprints (DESIGN: the same event delivered twice is one row)."""
from __future__ import annotations

import hashlib
from datetime import datetime

UNIT_SEPARATOR = "\x1f"


def utc_text(ts: datetime) -> str:
    """A timestamp as written into a key: YYYY-MM-DDTHH:MM:SS.ffffffZ (naive datetimes are UTC)."""
    return ts.isoformat(timespec="microseconds") + "Z"


def idempotency_key(key_texts: list[str]) -> str:
    """SHA-256 (hex) of the key fields' canonical texts joined with U+001F, in the contract's order: timestamps
    as utc_text, decimals at the field's scale, integers in decimal, strings as they are."""
    return hashlib.sha256(UNIT_SEPARATOR.join(key_texts).encode("utf-8")).hexdigest()


def payload_sha256(parts: list[str | None]) -> str:
    """Fingerprint of a record's canonical field texts; None is distinct from every string."""
    text = UNIT_SEPARATOR.join("\x00" if p is None else "\x02" + p for p in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def checksum_text(total: int) -> str:
    """Order-independent checksum of a set of rows, from the sum of their payload SHA-256 values (each read as
    an integer; sums of parts of the set add up): that sum mod 2^256, in hex."""
    return format(total % (1 << 256), "064x")
