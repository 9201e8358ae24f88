"""The throwaway PostgreSQL cluster used by the test suite."""

from __future__ import annotations

import psycopg
import pytest

pytestmark = pytest.mark.postgres


def test_connect_and_select_version(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn, connect_timeout=10) as conn:
        version = conn.execute("select version()").fetchone()[0]
        user, db = conn.execute("select current_user, current_database()").fetchone()
    assert version.startswith("PostgreSQL ")
    assert (user, db) == ("evident", "evident")


def test_restart_and_reconnect(pg_cluster) -> None:
    with psycopg.connect(pg_cluster.dsn, autocommit=True) as conn:
        conn.execute("create table if not exists restart_probe (x int)")
        conn.execute("insert into restart_probe values (1)")
        before = conn.execute("select pg_postmaster_start_time()").fetchone()[0]
    port = pg_cluster.port

    pg_cluster.restart()
    assert pg_cluster.port == port and pg_cluster.is_running()
    with psycopg.connect(pg_cluster.dsn, autocommit=True) as conn:
        after = conn.execute("select pg_postmaster_start_time()").fetchone()[0]
        assert conn.execute("select count(*) from restart_probe").fetchone()[0] >= 1
        conn.execute("drop table restart_probe")
    assert after > before

    # stopped mid-run: connections are refused, then work again on the same port
    pg_cluster.stop_server(mode="immediate")
    assert not pg_cluster.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg_cluster.dsn, connect_timeout=2).close()
    pg_cluster.start_server()
    with psycopg.connect(pg_cluster.dsn) as conn:
        assert conn.execute("select 1").fetchone()[0] == 1


def test_fresh_database_is_empty_and_separate(fresh_pg_dsn: str, postgres_dsn: str) -> None:
    with psycopg.connect(fresh_pg_dsn) as conn:
        db = conn.execute("select current_database()").fetchone()[0]
        tables = conn.execute(
            "select count(*) from information_schema.tables where table_schema = 'public'"
        ).fetchone()[0]
    assert db.startswith("t_") and db != "evident"
    assert tables == 0


def test_password_not_in_server_log(pg_cluster) -> None:
    assert len(pg_cluster.password) >= 16
    assert pg_cluster.password not in pg_cluster.log_tail(10_000)
    assert pg_cluster.password not in repr(pg_cluster)
