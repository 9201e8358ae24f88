"""One run at a time per warehouse: a lock file beside the DuckDB file, plus a Postgres advisory lock.

The second run exits at once naming the holder (exit 75), or waits when asked to.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

import psycopg

from evident.control.batches import utcnow
from evident.errors import LockHeld
from evident.retry import with_retry

ADVISORY_KEY = 0x45564944454E54  # "EVIDENT"


class RunLock:
    def __init__(self, duckdb_path: Path, postgres_dsn: str | None, run_id: str, command: str, wait: bool = False):
        self.path = Path(f"{duckdb_path}.lock")
        self.dsn = postgres_dsn
        self.holder = {"run_id": run_id, "command": command, "pid": os.getpid(),
                       "host": socket.gethostname(), "started_at": utcnow().isoformat() + "Z"}
        self.wait = wait
        self._fd: int | None = None
        self._pg: psycopg.Connection | None = None

    def __enter__(self) -> "RunLock":
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

    def _lock_file(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if self.wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.pread(fd, 4096, 0))
            os.close(fd)
            raise LockHeld(f"another Evident run holds the warehouse lock {self.path}: {holder}; "
                           "try again later or pass --wait") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(self.holder).encode(), 0)
        self._fd = fd

    def _release_file(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _lock_postgres(self) -> None:
        name = f"evident {self.holder['command']} run {self.holder['run_id']} pid {self.holder['pid']}@{self.holder['host']}"
        self._pg = with_retry(
            lambda: psycopg.connect(self.dsn, autocommit=True, connect_timeout=10, application_name=name[:63]),
            what="connecting to Postgres for the run lock")
        if self.wait:
            self._pg.execute("select pg_advisory_lock(%s)", [ADVISORY_KEY])
            return
        if self._pg.execute("select pg_try_advisory_lock(%s)", [ADVISORY_KEY]).fetchone()[0]:
            return
        row = self._pg.execute(
            "select a.application_name, a.pid, a.backend_start from pg_locks l join pg_stat_activity a using (pid) "
            "where l.locktype = 'advisory' and l.granted and l.objid = (%s::bigint & 4294967295)::oid limit 1",
            [ADVISORY_KEY]).fetchone()
        self._pg.close()
        self._pg = None
        holder = f"{row[0]!r} (backend pid {row[1]}, since {row[2]:%Y-%m-%d %H:%M:%S})" if row else "another session"
        raise LockHeld(f"another Evident run holds the Postgres run lock: {holder}; try again later or pass --wait")


def _describe(raw: bytes) -> str:
    try:
        h = json.loads(raw.decode() or "{}")
        return f"run {h['run_id']} ({h['command']}, pid {h['pid']} on {h['host']}, since {h['started_at']})"
    except (ValueError, KeyError):
        return "a run whose details are unreadable"
