"""Error types. Each carries a reason code and a human message; the CLI maps them to exit codes once."""
from __future__ import annotations

EXIT_OK = 0
EXIT_DATA = 1  # the data failed: batch rejected, gate failed, reconciliation mismatch
EXIT_USAGE = 2  # usage or configuration error
EXIT_TEMPORARY = 75  # lock held, retries exhausted (EX_TEMPFAIL)


class EvidentError(Exception):
    """Base: `reason` is a stable machine code, `str(err)` the human message."""

    exit_code = EXIT_DATA
    reason = "error"

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message)
        if reason:
            self.reason = reason


class ConfigError(EvidentError):
    exit_code = EXIT_USAGE
    reason = "configuration"


class ContractError(EvidentError):
    """The contract file itself is unusable (not a data problem)."""

    exit_code = EXIT_USAGE
    reason = "contract_invalid"


class DataRejected(EvidentError):
    """A batch, gate or reconciliation failed on the data."""

    exit_code = EXIT_DATA
    reason = "data_rejected"


class IllegalTransition(EvidentError):
    exit_code = EXIT_DATA
    reason = "illegal_transition"


class LockHeld(EvidentError):
    exit_code = EXIT_TEMPORARY
    reason = "lock_held"


class TemporaryFailure(EvidentError):
    """A transient fault that outlived its retries; a rerun may succeed."""

    exit_code = EXIT_TEMPORARY
    reason = "retries_exhausted"


class PermanentDatabaseError(EvidentError):
    """A database error that retrying cannot fix (syntax, permissions, constraint)."""

    exit_code = EXIT_DATA
    reason = "database_error"
