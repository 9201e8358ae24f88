"""Keep secrets out of logs and messages: every string we print passes through redact()."""
from __future__ import annotations

import logging
import re

from psycopg.conninfo import conninfo_to_dict

_SECRETS: set[str] = set()
# URL userinfo (scheme://user:PASSWORD@host) and key=value DSN passwords.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]+)(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def register_dsn(dsn: str | None) -> None:
    """Remember the password inside a DSN so it is masked wherever it shows up."""
    if not dsn:
        return
    try:
        password = conninfo_to_dict(dsn).get("password")
    except Exception:  # an unparsable DSN is reported elsewhere; mask it whole
        password = dsn
    if password:
        _SECRETS.add(str(password))


def redact(text: str) -> str:
    text = _URL_PASSWORD.sub(r"\1***\3", text)
    text = _KV_PASSWORD.sub(r"\1***", text)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True
