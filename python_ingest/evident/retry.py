"""Retry transient faults with capped exponential backoff and full jitter; fail everything else at once.

What a fault means is decided where it arises: each engine classifies its driver's errors
(evident.engines: transient, terminal, configuration). Only transient ones are retried. An exception no
engine recognises is not a database fault at all but a bug, and propagates unchanged so that the CLI reports
it as one (exit 70) — never as "the data failed".
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import NoReturn, TypeVar

from evident.engines import classify
from evident.errors import ConfigError, EvidentError, PermanentDatabaseError, TemporaryFailure
from evident.secrets import redact

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    kind = classify(exc)
    if kind is not None:
        return kind == "transient"
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
        except Exception as exc:
            if not is_transient(exc):
                raise_classified(exc, what)
            if attempt == attempts:
                raise TemporaryFailure(
                    f"{what} failed after {attempts} attempts; last error: {redact(describe(exc))}"
                ) from exc
            delay = min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
            log.warning("%s: transient fault (%s), retry %d/%d in %.2fs",
                        what, redact(describe(exc)), attempt, attempts - 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def raise_classified(exc: Exception, what: str) -> NoReturn:
    """Re-raise a non-transient exception as what it is: a configuration or database error, else unchanged."""
    kind = classify(exc)
    if kind == "configuration":
        raise ConfigError(f"{what} failed: {redact(describe(exc))}") from exc
    if kind == "terminal":
        raise PermanentDatabaseError(f"{what} failed: {redact(describe(exc))}") from exc
    raise exc  # not a database fault: a bug, reported as such by the CLI


def describe(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None)
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}{f' [{state}]' if state else ''}: {text}"
