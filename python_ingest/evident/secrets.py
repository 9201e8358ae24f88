"""Keep secrets out of logs and messages: every string we print passes through redact().

Two layers. Passwords in DSN-shaped text are masked whatever they are: URL userinfo
(`scheme://user:PASSWORD@host`) and key=value forms (`password=…`, `PGPASSWORD=…`, `"password": "…"`).
Secrets registered with register_dsn() are also masked wherever they appear as a whole token (not inside a
longer word) — but only when they are long enough to mean something: masking every `x` of a message for a
one-letter password would garble the message and, by the gaps, spell out the password.
"""
from __future__ import annotations

import logging
import re

# Shorter secrets are masked only in DSN-shaped text (see the module docstring).
MIN_FREE_TEXT_SECRET = 6

_SECRETS: set[str] = set()
_secret_patterns: list[re.Pattern[str]] = []
# URL userinfo (scheme://user:PASSWORD@host) and key=value DSN passwords.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s/]+)(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_JSON_PASSWORD = re.compile(r"""(["']?password["']?\s*:\s*)("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""", re.IGNORECASE)


def register_dsn(dsn: str | None) -> None:
    """Remember the password inside a DSN so it is masked wherever it shows up."""
    if not dsn:
        return
    from evident.engines.postgres import dsn_password  # lazy: the engines import this module

    password = dsn_password(dsn)
    if password:
        register_secret(password)


def register_secret(secret: str) -> None:
    if not secret or secret in _SECRETS:
        return
    _SECRETS.add(secret)
    if len(secret) >= MIN_FREE_TEXT_SECRET:
        _secret_patterns.append(re.compile(rf"(?<![\w]){re.escape(secret)}(?![\w])"))
        _secret_patterns.sort(key=lambda p: len(p.pattern), reverse=True)


def redact(text: str) -> str:
    text = _URL_PASSWORD.sub(r"\1***\3", text)
    text = _KV_PASSWORD.sub(r"\1***", text)
    text = _JSON_PASSWORD.sub(r'\1"***"', text)
    for pattern in _secret_patterns:
        text = pattern.sub("***", text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True
