"""Shared pytest fixtures.

Postgres: ``postgres_dsn`` (session) is ``$EVIDENT_TEST_POSTGRES_DSN`` or a throwaway cluster started once per
session (tests/pgcluster.py); ``pg_cluster`` (session) is that cluster object, for stop/start/restart tests;
``fresh_pg_dsn`` (function) is a brand-new empty database per test.  When no server can be had, these skip —
except under CI (``CI=true`` or ``CI=1``), where they fail: CI must never silently skip Postgres tests.
"""

from __future__ import annotations

import os
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

try:  # `tests` as a (namespace) package, e.g. `python -m pytest` from the repo root
    from tests.pgcluster import (
        ENV_DSN,
        PgCluster,
        PostgresUnavailable,
        dsn_with_dbname,
        ensure_postgres_dsn,
        shared_cluster,
    )
except ImportError:  # rootdir-less invocation: pytest puts tests/ itself on sys.path
    from pgcluster import (  # type: ignore[no-redef]
        ENV_DSN,
        PgCluster,
        PostgresUnavailable,
        dsn_with_dbname,
        ensure_postgres_dsn,
        shared_cluster,
    )


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def skip_or_fail(reason: str) -> None:
    """Skip locally; fail under CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: Postgres tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


# ------------------------------------------------------------------------------------------ Postgres


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """libpq URL of a database (``evident``) on a PostgreSQL server, role with superuser rights."""
    try:
        return ensure_postgres_dsn()
    except PostgresUnavailable as exc:
        skip_or_fail(f"PostgreSQL unavailable: {exc}")
        raise  # unreachable


@pytest.fixture(scope="session")
def pg_cluster() -> PgCluster:
    """The session's throwaway cluster (same server as ``postgres_dsn``), for stop/start/restart tests.

    Not available when ``EVIDENT_TEST_POSTGRES_DSN`` points at an external server.  A test that leaves the
    server stopped gets it started again after it (see ``_pg_cluster_running_after_test``).
    """
    if os.environ.get(ENV_DSN, "").strip():
        skip_or_fail(f"{ENV_DSN} is set: an external server cannot be stopped/restarted by the tests")
    try:
        return shared_cluster()
    except PostgresUnavailable as exc:
        skip_or_fail(f"PostgreSQL unavailable: {exc}")
        raise  # unreachable


@pytest.fixture(autouse=True)
def _pg_cluster_running_after_test(request):
    """After a test that used ``pg_cluster`` (e.g. stopped it mid-run), make sure the server is up again."""
    yield
    if "pg_cluster" not in request.fixturenames:
        return
    try:
        cluster = request.getfixturevalue("pg_cluster")
    except BaseException:  # skipped/failed fixture
        return
    if cluster.base_dir is not None and not cluster.is_running():
        cluster.start_server()


@pytest.fixture
def fresh_pg_dsn(postgres_dsn: str):
    """DSN of a new, empty database ``t_<uuid>`` on the test server, dropped (WITH (FORCE)) after the test."""
    import psycopg
    from psycopg import sql

    name = f"t_{uuid.uuid4().hex}"
    with psycopg.connect(postgres_dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield dsn_with_dbname(postgres_dsn, name)
    try:
        with psycopg.connect(postgres_dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    except psycopg.Error as exc:  # e.g. the test left the server stopped; the cluster is thrown away anyway
        warnings.warn(f"could not drop test database {name}: {exc}", stacklevel=1)


# ------------------------------------------------------------------------------------------ Warehouse


@dataclass(frozen=True)
class TmpWarehouse:
    """A temporary root with the pipeline's paths; usable like a path (``tmp_warehouse / "x"``)."""

    root: Path
    duckdb_path: Path  # root/warehouse/warehouse.duckdb (its directory is NOT created)
    landing_dir: Path  # root/landing (created)

    def __truediv__(self, other) -> Path:
        return self.root / other

    def __fspath__(self) -> str:
        return str(self.root)


@pytest.fixture
def tmp_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TmpWarehouse:
    """Temp dir with EVIDENT_DUCKDB_PATH and EVIDENT_LANDING_DIR pointing inside it."""
    duckdb_path = tmp_path / "warehouse" / "warehouse.duckdb"
    landing_dir = tmp_path / "landing"
    landing_dir.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("EVIDENT_DUCKDB_PATH", str(duckdb_path))
    monkeypatch.setenv("EVIDENT_LANDING_DIR", str(landing_dir))
    return TmpWarehouse(root=tmp_path, duckdb_path=duckdb_path, landing_dir=landing_dir)
