"""A throwaway PostgreSQL cluster for tests.

    with PgCluster() as pg:          # initdb + start, a few seconds
        psycopg.connect(pg.dsn)      # postgresql://evident:<password>@127.0.0.1:<port>/evident
        pg.restart()                 # same port, same data dir
        pg.stop_server(); pg.start_server()
    # stopped (pg_ctl stop -m immediate) and its directory removed

`ensure_postgres_dsn()` returns ``EVIDENT_TEST_POSTGRES_DSN`` when it is set, otherwise it starts one
cluster shared by the whole process (`shared_cluster()`).

Server binaries are found with ``EVIDENT_PG_BINDIR``, ``pg_config --bindir``, the highest
``/usr/lib/postgresql/*/bin`` or ``initdb`` on PATH.  PostgreSQL refuses to run as root, so when the
effective uid is 0 the server programs run as the ``postgres`` OS user (``runuser -u postgres --``) in a
directory under /tmp owned by that user.  Any failure raises `PostgresUnavailable` (with the server log tail
when the server was started).

Leaks: every cluster is stopped at interpreter exit (atexit), and a small watchdog process stops it and
removes its directory if this process dies without running atexit (SIGKILL, pytest-timeout).
"""

from __future__ import annotations

import atexit
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

__all__ = [
    "ENV_DSN",
    "PgCluster",
    "PostgresUnavailable",
    "dsn_with_dbname",
    "ensure_postgres_dsn",
    "find_pg_bindir",
    "shared_cluster",
]

ENV_DSN = "EVIDENT_TEST_POSTGRES_DSN"
ENV_BINDIR = "EVIDENT_PG_BINDIR"
OS_USER = "postgres"  # the OS account used to run the server when we are root
SUPERUSER = "postgres"  # bootstrap superuser role created by initdb

_REQUIRED_PROGRAMS = ("initdb", "pg_ctl", "postgres")


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be found, initialised or started here."""


# --------------------------------------------------------------------------------------------------
# Locating the server binaries
# --------------------------------------------------------------------------------------------------


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / p, os.X_OK) for p in _REQUIRED_PROGRAMS)


def _version_key(path: Path) -> tuple:
    # /usr/lib/postgresql/<version>/bin -> numeric sort of <version> ("9.6" < "15" < "16")
    return tuple(int(x) if x.isdigit() else -1 for x in re.split(r"[.\-]", path.parent.name))


def find_pg_bindir() -> Path:
    """Directory holding initdb/pg_ctl/postgres, or raise `PostgresUnavailable`."""
    tried: list[str] = []

    env = os.environ.get(ENV_BINDIR)
    if env:
        if _has_server(Path(env)):
            return Path(env)
        tried.append(f"${ENV_BINDIR}={env}")

    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            if _has_server(Path(out)):
                return Path(out)
            tried.append(f"pg_config --bindir={out}")  # e.g. libpq-dev without the server

    candidates = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if _has_server(p)),
        key=_version_key,
        reverse=True,
    )
    if candidates:
        return candidates[0]
    tried.append("/usr/lib/postgresql/*/bin")

    initdb = shutil.which("initdb")
    if initdb:
        bindir = Path(initdb).resolve().parent
        if _has_server(bindir):
            return bindir
    tried.append("initdb on PATH")

    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; looked at: "
        + "; ".join(tried)
        + ". Install them (Debian/Ubuntu: apt-get install postgresql), set "
        + f"{ENV_BINDIR}, or point {ENV_DSN} at an existing server."
    )


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # as Postgres binds its own socket: connections it closed at a stop leave the port in TIME_WAIT for a
        # minute, which blocks a plain bind but not the server; only a live listener means "not free"
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def dsn_with_dbname(dsn: str, dbname: str) -> str:
    """The same connection string pointing at another database (URL or key=value form)."""
    if dsn.startswith(("postgresql://", "postgres://")):
        parts = urllib.parse.urlsplit(dsn)
        return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(dbname, safe="")))
    from psycopg.conninfo import make_conninfo

    return make_conninfo(dsn, dbname=dbname)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


# Stops the cluster and removes its directory once our end of its stdin pipe closes, i.e. when the
# owning process exits for whatever reason.  Runs in its own session so process-group kills miss it.
_WATCHDOG = r"""
import shutil, signal, subprocess, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
cmd, base = sys.argv[1:-1], sys.argv[-1]
try:
    sys.stdin.buffer.read()
except BaseException:
    pass
subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
shutil.rmtree(base, ignore_errors=True)
"""


# --------------------------------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------------------------------


class PgCluster:
    """A private PostgreSQL server on 127.0.0.1:<free port>, data in a temporary directory.

    Attributes once started: ``dsn`` (role/database ``evident``, a SUPERUSER), ``superuser_dsn``
    (role ``postgres``, database ``postgres``), ``host``, ``port``, ``user``, ``password``, ``dbname``,
    ``base_dir`` (temp dir), ``data_dir``, ``log_path`` (server log), ``socket_dir``, ``bindir``.
    """

    def __init__(
        self,
        *,
        user: str = "evident",
        dbname: str = "evident",
        password: str | None = None,
        port: int | None = None,
        bindir: str | os.PathLike | None = None,
        settings: dict[str, str | int] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        import secrets

        self.user = user
        self.dbname = dbname
        self.password = password or "pw_" + secrets.token_hex(16)
        self._superuser_password = "su_" + secrets.token_hex(16)
        self.host = "127.0.0.1"
        self.port: int | None = port
        self._fixed_port = port is not None
        self._bindir_arg = Path(bindir) if bindir else None
        self.bindir: Path | None = None
        self.extra_settings = dict(settings or {})
        self.start_timeout = start_timeout
        self.base_dir: Path | None = None
        self._watchdog: subprocess.Popen | None = None
        self._lock = threading.RLock()
        self._started = False

    # ---------------------------------------------------------------- paths and connection strings
    @property
    def data_dir(self) -> Path:
        return self._base() / "data"

    @property
    def log_path(self) -> Path:
        return self._base() / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        return self._base()

    def _base(self) -> Path:
        if self.base_dir is None:
            raise RuntimeError("PgCluster is not started")
        return self.base_dir

    def _url(self, user: str, password: str, dbname: str) -> str:
        if self.port is None:
            raise RuntimeError("PgCluster is not started")
        q = urllib.parse.quote
        return f"postgresql://{q(user, safe='')}:{q(password, safe='')}@{self.host}:{self.port}/{q(dbname, safe='')}"

    @property
    def dsn(self) -> str:
        return self._url(self.user, self.password, self.dbname)

    @property
    def superuser_dsn(self) -> str:
        return self._url(SUPERUSER, self._superuser_password, "postgres")

    def dsn_for(self, dbname: str) -> str:
        """DSN of role ``evident`` for another database of this cluster."""
        return self._url(self.user, self.password, dbname)

    def __repr__(self) -> str:  # never show the password
        state = "started" if self._started else "not started"
        return f"<PgCluster {self.host}:{self.port} {state} base_dir={self.base_dir}>"

    # ---------------------------------------------------------------- running server programs
    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        if shutil.which("runuser"):
            return ["runuser", "-u", OS_USER, "--", *argv]
        return ["su", OS_USER, "-s", "/bin/sh", "-c", shlex.join(argv)]

    def _run(self, argv: list[str], *, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess:
        cmd = self._as_server_user(argv)
        try:
            proc = subprocess.run(
                cmd,
                cwd=self._base(),  # the postgres user may not be able to read our cwd
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, "LC_ALL": "C", "LANG": "C", "PGTZ": "UTC"},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresUnavailable(f"{Path(argv[0]).name} failed: {exc}") from exc
        if check and proc.returncode != 0:
            raise PostgresUnavailable(
                f"{Path(argv[0]).name} exited with {proc.returncode}: "
                f"{(proc.stdout + proc.stderr).strip()[-2000:]}"
            )
        return proc

    def _pg(self, program: str) -> str:
        assert self.bindir is not None
        return str(self.bindir / program)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> PgCluster:
        """initdb, configure, start the server, create role and database. Idempotent."""
        with self._lock:
            if self._started:
                return self
            try:
                self._start()
            except BaseException:
                self._cleanup()
                raise
            self._started = True
            _LIVE.add(self)
            return self

    def _start(self) -> None:
        self.bindir = self._bindir_arg or find_pg_bindir()
        if not _has_server(self.bindir):
            raise PostgresUnavailable(f"no initdb/pg_ctl/postgres in {self.bindir}")

        root = os.geteuid() == 0
        uid = gid = None
        if root:
            import pwd

            try:
                pw = pwd.getpwnam(OS_USER)
            except KeyError:
                raise PostgresUnavailable(
                    f"running as root but there is no {OS_USER!r} OS user to run the server as"
                ) from None
            uid, gid = pw.pw_uid, pw.pw_gid

        # /tmp (not $TMPDIR, which may sit under an unreadable home) when the server runs as another user.
        parent = "/tmp" if root else None
        self.base_dir = Path(tempfile.mkdtemp(prefix="evident-pg-", dir=parent))
        os.chmod(self.base_dir, 0o700 if not root else 0o755)
        if root:
            os.chown(self.base_dir, uid, gid)
        self._start_watchdog()

        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self._superuser_password + "\n")
        os.chmod(pwfile, 0o600)
        if root:
            os.chown(pwfile, uid, gid)

        base_args = [
            self._pg("initdb"),
            "-D", str(self.data_dir),
            "-U", SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E", "UTF8",
            "--no-sync",
        ]
        proc = self._run([*base_args, "--locale=C.UTF-8"], check=False)
        if proc.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self._run([*base_args, "--no-locale"])
        pwfile.unlink()

        settings: dict[str, str | int] = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.base_dir}'",
            "max_connections": 100,
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "password_encryption": "'scram-sha-256'",
            "dynamic_shared_memory_type": "mmap",
            "logging_collector": "off",
            "TimeZone": "'UTC'",
            "log_timezone": "'UTC'",
        }
        settings.update(self.extra_settings)
        with open(self.data_dir / "postgresql.conf", "a") as conf:  # keeps the postgres ownership
            conf.write("\n# --- evident test cluster ---\n")
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

        for attempt in range(5):
            if not self._fixed_port:
                self.port = _free_port()
            try:
                self.start_server()
                break
            except PostgresUnavailable as exc:
                # another process grabbed the port between our probe and the server's bind: try another
                if self._fixed_port or attempt == 4 or "already in use" not in str(exc):
                    raise
        self._create_role_and_db()

    def _create_role_and_db(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.superuser_dsn, autocommit=True, connect_timeout=10) as conn:
            # Send a SCRAM verifier, never the clear-text password, so it cannot reach the server log.
            verifier = conn.pgconn.encrypt_password(
                self.password.encode(), self.user.encode(), b"scram-sha-256"
            ).decode()
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                    sql.Identifier(self.user), sql.Literal(verifier)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(self.dbname), sql.Identifier(self.user)
                )
            )

    def start_server(self) -> None:
        """Start the server on the existing data dir and port (waits until it accepts connections)."""
        with self._lock:
            if self.base_dir is None:
                raise RuntimeError("call start() first")
            if self.is_running():
                return
            # after an immediate stop the old port can linger for a moment
            deadline = time.monotonic() + 10
            while not _port_is_free(self.port) and time.monotonic() < deadline:
                time.sleep(0.05)
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            proc = self._run(
                [
                    self._pg("pg_ctl"), "start",
                    "-D", str(self.data_dir),
                    "-l", str(self.log_path),
                    "-w", "-t", str(int(self.start_timeout)),
                    "-o", f"-p {self.port}",
                ],
                check=False,
                timeout=self.start_timeout + 30,
            )
            if proc.returncode != 0:
                log = ""
                try:
                    with open(self.log_path, errors="replace") as f:
                        f.seek(offset)
                        log = f.read()
                except OSError:
                    pass
                tail = "\n".join(log.splitlines()[-40:]) or _tail(self.log_path)
                raise PostgresUnavailable(
                    f"PostgreSQL did not start on {self.host}:{self.port} "
                    f"(pg_ctl exit {proc.returncode}: {(proc.stdout + proc.stderr).strip()[-1000:]})\n"
                    f"--- server log tail ({self.log_path}) ---\n{tail}"
                )

    def stop_server(self, mode: str = "fast") -> None:
        """Stop the server, keeping data dir and port. ``mode``: smart, fast or immediate (a crash)."""
        with self._lock:
            if self.base_dir is None or not self.is_running():
                return
            self._run([self._pg("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60"])

    def restart(self, mode: str = "fast") -> None:
        """Stop and start again on the same port and data dir."""
        with self._lock:
            self.stop_server(mode)
            self.start_server()

    def is_running(self) -> bool:
        if self.base_dir is None or self.bindir is None or not self.data_dir.exists():
            return False
        proc = self._run([self._pg("pg_ctl"), "status", "-D", str(self.data_dir)], check=False, timeout=30)
        return proc.returncode == 0

    def stop(self) -> None:
        """Stop the server immediately and remove its directory. Idempotent."""
        with self._lock:
            self._started = False
            _LIVE.discard(self)
            self._cleanup()

    def _cleanup(self) -> None:
        if self.base_dir is None:
            return
        try:
            if self.bindir is not None and self.data_dir.exists():
                self._run(
                    [self._pg("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "immediate", "-w", "-t", "30"],
                    check=False,
                    timeout=60,
                )
        except PostgresUnavailable:
            pass
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None
            self._stop_watchdog()

    def _start_watchdog(self) -> None:
        stop_cmd = self._as_server_user(
            [self._pg("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "immediate", "-w", "-t", "30"]
        )
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG, *stop_cmd, str(self.base_dir)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.base_dir,
                start_new_session=True,
            )
        except OSError:
            self._watchdog = None  # best effort; atexit still covers normal exits

    def _stop_watchdog(self) -> None:
        wd, self._watchdog = self._watchdog, None
        if wd is None:
            return
        try:
            wd.send_signal(signal.SIGKILL)  # we cleaned up ourselves
            wd.wait(timeout=10)
            if wd.stdin:
                wd.stdin.close()
        except (OSError, subprocess.TimeoutExpired):
            pass

    # ---------------------------------------------------------------- misc
    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------------
# Process-wide registry and shared cluster
# --------------------------------------------------------------------------------------------------

_LIVE: set[PgCluster] = set()
_SHARED: PgCluster | None = None
_SHARED_LOCK = threading.Lock()


@atexit.register
def _stop_all() -> None:
    for cluster in list(_LIVE):
        try:
            cluster.stop()
        except Exception:
            pass


def shared_cluster() -> PgCluster:
    """The process-wide cluster started on first use (ignores EVIDENT_TEST_POSTGRES_DSN)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None or not _SHARED._started:
            cluster = PgCluster()
            cluster.start()
            _SHARED = cluster
        return _SHARED


def ensure_postgres_dsn() -> str:
    """``$EVIDENT_TEST_POSTGRES_DSN`` if set, else the DSN of the shared throwaway cluster.

    Raises `PostgresUnavailable` when no server can be started.
    """
    env = os.environ.get(ENV_DSN, "").strip()
    if env:
        return env
    return shared_cluster().dsn


if __name__ == "__main__":  # manual check: python tests/pgcluster.py
    t0 = time.monotonic()
    with PgCluster() as pg:
        print(f"started in {time.monotonic() - t0:.2f}s: {pg!r}")
        t1 = time.monotonic()
        pg.restart()
        print(f"restarted in {time.monotonic() - t1:.2f}s")
