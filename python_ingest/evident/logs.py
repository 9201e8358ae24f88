"""Logging set-up: text or JSON lines on stderr, every record passed through the secret redactor."""
from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from evident.secrets import RedactingFilter


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        return json.dumps(entry, ensure_ascii=False)


def configure(fmt: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # dbt and GX are chatty at INFO; their own output is summarised by Evident.
    for noisy in ("dbt", "great_expectations", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
