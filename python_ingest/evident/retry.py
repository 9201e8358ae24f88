"""Retry transient faults with capped exponential backoff and full jitter; fail everything else at once."""
from __future__ import annotations

import logging
import random
import time
from typing import Callable, TypeVar

import duckdb
import psycopg

from .errors import EvidentError, PermanentDatabaseError, TemporaryFailure
from .secrets import redact

log = logging.getLogger(__name__)
T = TypeVar("T")

# SQLSTATEs worth another try: serialization failure, deadlock, admin/crash shutdown, cannot connect now,
# statement timeout / cancel, lock not available, too many connections, connection exceptions.
TRANSIENT_SQLSTATES = {"40001", "40P01", "57P01", "57P02", "57P03", "57014", "55P03", "53300",
                       "08000", "08001", "08003", "08004", "08006"}


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, psycopg.Error):
        state = getattr(exc, "sqlstate", None)
        if state:
            return state in TRANSIENT_SQLSTATES
        # No SQLSTATE: the connection itself failed (refused, reset, server gone).
        return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
    if isinstance(exc, duckdb.Error):
        text = str(exc)
        # Another process holds the file lock, or a write-write conflict between transactions.
        return "Could not set lock" in text or isinstance(exc, duckdb.TransactionException)
    return isinstance(exc, (ConnectionError, TimeoutError))


# Waits of 0.5, 1, 2, 4 and 8 s (each × U(0.5, 1)): long enough to ride out a Postgres restart or a
# failover, short enough that a scheduler sees exit 75 within ~16 s when the fault persists.
ATTEMPTS = 6
BASE_DELAY_S = 0.5
MAX_DELAY_S = 8.0


def with_retry(action: Callable[[], T], *, what: str, attempts: int = ATTEMPTS, base: float = BASE_DELAY_S,
               cap: float = MAX_DELAY_S, sleep: Callable[[float], None] = time.sleep) -> T:
    """Run `action`; on a transient fault wait min(cap, base·2^n)·U(0.5, 1) and try again."""
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except EvidentError:
            raise
        except Exception as exc:  # classified below: transient → retry, anything else → fail at once
            if not is_transient(exc):
                raise PermanentDatabaseError(f"{what} failed: {redact(_describe(exc))}") from exc
            if attempt == attempts:
                raise TemporaryFailure(
                    f"{what} failed after {attempts} attempts; last error: {redact(_describe(exc))}"
                ) from exc
            delay = min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            log.warning("%s: transient fault (%s), retry %d/%d in %.2fs",
                        what, redact(_describe(exc)), attempt, attempts - 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def _describe(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None)
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}{f' [{state}]' if state else ''}: {text}"
