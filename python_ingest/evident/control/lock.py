"""One run at a time per warehouse: a lock file beside the DuckDB file, plus a Postgres advisory lock.

The second run exits at once naming the holder (exit 75), or, when asked to wait, polls both locks until
they are free or its wait timeout has passed (then exit 75 naming the holder, as without waiting).
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import tempfile
import time
from pathlib import Path

from evident.control.batches import utcnow
from evident.engines import Engine, PostgresEngine
from evident.errors import ConfigError, LockHeld
from evident.retry import with_retry

log = logging.getLogger(__name__)

ADVISORY_KEY = 0x45564944454E54  # "EVIDENT"
# `--wait` without a value: long enough for any run we know of, short enough that a stuck holder (a hung
# process, a forgotten terminal) shows up as exit 75 in the scheduler the same day rather than never.
DEFAULT_WAIT_S = 6 * 3600.0
POLL_MIN_S = 0.1
POLL_MAX_S = 2.0


def wait_seconds(wait: bool | float | None) -> float | None:
    """How long to wait for the lock: None = not at all; True = DEFAULT_WAIT_S; a number = that many seconds."""
    if wait is None or wait is False:
        return None
    if wait is True:
        return DEFAULT_WAIT_S
    seconds = float(wait)
    if seconds < 0:
        raise ConfigError(f"the wait timeout must be 0 seconds or more, got {wait}")
    return seconds


def describe_wait(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


class RunLock:
    """`wait`: False/None = fail at once when held; True = wait up to DEFAULT_WAIT_S; a number = seconds."""

    def __init__(self, duckdb_path: Path, postgres_dsn: str | None, run_id: str, command: str,
                 wait: bool | float | None = False):
        self.path = Path(f"{duckdb_path}.lock")
        self.dsn = postgres_dsn
        self.holder = {"run_id": run_id, "command": command, "pid": os.getpid(),
                       "host": socket.gethostname(), "started_at": utcnow().isoformat() + "Z"}
        self.timeout = wait_seconds(wait)
        self._deadline: float | None = None
        self._fd: int | None = None
        self._pg: Engine | None = None  # the session holding the advisory lock

    def __enter__(self) -> RunLock:
        self._deadline = None if self.timeout is None else time.monotonic() + self.timeout
        self._lock_file()
        try:
            if self.dsn:
                self._lock_postgres()
        except BaseException:
            self._release_file()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._pg is not None:
            self._pg.close()  # closing the session releases the advisory lock
            self._pg = None
        self._release_file()

    # ---- waiting
    def _poll(self, attempt: int, what: str, holder: str) -> bool:
        """Sleep before the next attempt; False when there is no waiting (left)."""
        if self._deadline is None:
            return False
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            return False
        if attempt == 1:
            log.info("waiting for %s held by %s (up to %s)", what, holder, describe_wait(self.timeout or 0))
        time.sleep(min(remaining, POLL_MAX_S, POLL_MIN_S * 2 ** min(attempt, 5)))
        return True

    def _held_message(self, what: str, holder: str) -> str:
        if self.timeout is None:
            return f"another Evident run holds {what}: {holder}; try again later or pass --wait"
        return (f"another Evident run still holds {what} after waiting {describe_wait(self.timeout)}: {holder}; "
                "try again later or wait longer (--wait=SECONDS)")

    # ---- the file half
    def _lock_file(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(_unwritable(self.path, exc)) from None
        try:
            _check_writable(self.path.parent)  # DuckDB writes its WAL beside the file: a run needs the folder
        except ConfigError:
            os.close(fd)
            raise
        what = f"the warehouse lock {self.path}"
        attempt = 0
        while True:
            attempt += 1
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _describe(os.pread(fd, 4096, 0))
                if not self._poll(attempt, what, holder):
                    os.close(fd)
                    raise LockHeld(self._held_message(what, holder)) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(self.holder).encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise ConfigError(_unwritable(self.path, exc)) from None
        self._fd = fd

    def _release_file(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    # ---- the Postgres half
    def _connect(self) -> Engine:
        assert self.dsn is not None
        dsn, h = self.dsn, self.holder
        name = f"evident {h['command']} run {h['run_id']} pid {h['pid']}@{h['host']}"
        return with_retry(lambda: PostgresEngine(dsn, name[:63]), what="connecting to Postgres for the run lock")

    def _try_postgres(self) -> bool:
        if self._pg is None:
            self._pg = self._connect()
        return self._pg.try_advisory_lock(ADVISORY_KEY)  # a dropped session reconnects

    def _lock_postgres(self) -> None:
        attempt = 0
        while True:
            attempt += 1
            if with_retry(self._try_postgres, what="taking the Postgres run lock"):
                return
            holder = self._postgres_holder()
            if not self._poll(attempt, "the Postgres run lock", holder):
                break
        if self._pg is not None:
            self._pg.close()
            self._pg = None
        raise LockHeld(self._held_message("the Postgres run lock", holder))

    def _postgres_holder(self) -> str:
        assert self._pg is not None
        return self._pg.advisory_lock_holder(ADVISORY_KEY)


def _check_writable(folder: Path) -> None:
    try:
        fd, probe = tempfile.mkstemp(prefix=".evident-write-check-", dir=folder)
    except OSError as exc:
        raise ConfigError(f"the warehouse folder {folder} is not writable "
                          f"({os.strerror(exc.errno) if exc.errno else exc}): DuckDB writes its WAL file beside "
                          "the warehouse file; fix the folder's permissions or point EVIDENT_DUCKDB_PATH at a "
                          "writable folder (`evident status` still reads it)") from None
    os.close(fd)
    os.unlink(probe)


def _unwritable(path: Path, exc: OSError) -> str:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    hint = ("the warehouse folder must be writable by this user"
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else "check the warehouse folder")
    return (f"cannot write the run lock {path} beside the DuckDB warehouse ({reason}): {hint}; "
            "fix its permissions or point EVIDENT_DUCKDB_PATH at a writable folder")


def _describe(raw: bytes) -> str:
    try:
        h = json.loads(raw.decode() or "{}")
        return f"run {h['run_id']} ({h['command']}, pid {h['pid']} on {h['host']}, since {h['started_at']})"
    except (ValueError, KeyError):
        return "a run whose details are unreadable"
