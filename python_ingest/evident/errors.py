"""Every error type Evident raises. Each carries a reason code and a human message; the CLI maps them to exit
codes once (evident.cli.main). Anything that is not an EvidentError is a bug: exit 70, with its traceback
written to a file the message names."""
from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_DATA = 1  # the data failed: batch rejected, gate failed, reconciliation mismatch
EXIT_USAGE = 2  # usage or configuration error
EXIT_INTERNAL = 70  # an internal error, i.e. a bug (EX_SOFTWARE)
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


class TransientToolError(ConnectionError):
    """dbt or GX reported a transient database fault (a restart, a dropped connection): evident.retry retries
    the step, and exit 75 once the retries are exhausted. Not an EvidentError until then."""


class GateFailed(DataRejected):
    reason = "gate_failed"


class PublishRefused(DataRejected):
    reason = "gate_not_passed"


class BatchRejected(DataRejected):
    """A batch's quarantined share exceeds its contract's max_quarantine_share: none of its rows land."""

    reason = "quarantine_threshold"


class ContractChanged(DataRejected):
    """The contract file changed while a batch pinned to it was landing: the batch fails safely."""

    reason = "contract_changed"


class BuildFailed(DataRejected):
    reason = "build_failed"


class ReconciliationFailed(DataRejected):
    reason = "reconciliation_mismatch"

    def __init__(self, report: Any):  # an evident.reconcile.report.ReconcileReport
        super().__init__(report.render())
        self.report = report


class Rejection(Exception):
    """One record set aside: its reason code (DESIGN's list) and message. Never leaves the land step."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class FastPathUndecided(Exception):
    """Inside the JSONL fast path (evident.land.fast_path): this line is not for it; the exact path decides.
    Never leaves the validator."""
