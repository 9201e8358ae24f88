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


def combine_checksums(hex_digests) -> str:
    """Order-independent checksum of a set of rows: sum of their SHA-256 values mod 2^256."""
    total = 0
    for digest in hex_digests:
        total += int(digest, 16)
    return format(total % (1 << 256), "064x")
