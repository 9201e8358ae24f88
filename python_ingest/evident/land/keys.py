"""Idempotency keys and payload fingerprints (DESIGN: the same event delivered twice is one row)."""
from __future__ import annotations

import hashlib
from datetime import datetime

UNIT_SEPARATOR = "\x1f"


def utc_text(ts: datetime) -> str:
    """event_ts as written into the key: YYYY-MM-DDTHH:MM:SS.ffffffZ (naive datetimes are UTC)."""
    return ts.isoformat(timespec="microseconds") + "Z"


def idempotency_key(user_id: int, event_ts: datetime, event_type: str, event_id: str) -> str:
    text = UNIT_SEPARATOR.join((str(user_id), utc_text(event_ts), event_type, event_id))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
