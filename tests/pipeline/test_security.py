"""Secrets stay secret; the reader role reads published.* and nothing else."""
from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from evident.engines import PostgresEngine
from evident.roles import setup_reader_role
from evident.sample import generate_sample
from evident.secrets import redact, register_dsn
from tests.helpers import run_cli, settings_for


@pytest.fixture
def one_letter_dsn(fresh_pg_dsn):
    """DSN of a login role whose password is the single letter x (and that owns its database)."""
    with psycopg.connect(fresh_pg_dsn, autocommit=True) as con:
        con.execute("drop role if exists one_letter")
        con.execute("create role one_letter login password 'x'")
        dbname = con.execute("select current_database()").fetchone()[0]
        con.execute(f'grant all on database "{dbname}" to one_letter')
        con.execute("grant create on schema public to one_letter")
    yield make_conninfo(fresh_pg_dsn, user="one_letter", password="x")
    with psycopg.connect(fresh_pg_dsn, autocommit=True) as con:
        con.execute(f'revoke all on database "{dbname}" from one_letter')
        con.execute("drop owned by one_letter cascade")
        con.execute("drop role one_letter")


def test_redact_masks_passwords_in_urls_and_key_value_dsns():
    register_dsn("postgresql://u:s3cr3t-pw@h/db")
    assert "s3cr3t-pw" not in redact("failed: postgresql://u:s3cr3t-pw@h/db and password=s3cr3t-pw and s3cr3t-pw")
    assert "hunter2" not in redact("host=h password='hunter2' dbname=x")


def test_a_one_letter_password_is_masked_in_dsns_without_garbling_messages():
    register_dsn("postgresql://evident:x@localhost:5432/x_db")
    register_dsn("host=localhost user=evident password=q")
    message = "the landing dir /data/inbox does not exist (EVIDENT_LANDING_DIR); next: fix it, x"
    assert redact(message) == message
    assert redact("connecting to postgresql://evident:x@localhost:5432/x_db failed") == \
        "connecting to postgresql://evident:***@localhost:5432/x_db failed"
    assert redact("dsn: host=localhost user=evident password=q dbname=quux") == \
        "dsn: host=localhost user=evident password=*** dbname=quux"
    assert redact('{"password": "x", "user": "xavier"}') == '{"password": "***", "user": "xavier"}'
    assert redact("EVIDENT_PG_PASSWORD=x PGPASSWORD='x'") == "EVIDENT_PG_PASSWORD=*** PGPASSWORD=***"


def test_long_secrets_are_masked_as_whole_tokens_anywhere():
    register_dsn("postgresql://evident:Tr0ub4dor-and-3@h/db")
    assert redact("auth with Tr0ub4dor-and-3 failed") == "auth with *** failed"
    assert redact("quoted 'Tr0ub4dor-and-3'.") == "quoted '***'."


def test_a_one_letter_password_leaves_the_cli_messages_intact(one_letter_dsn, tmp_path):
    settings = settings_for(tmp_path, one_letter_dsn)
    settings.landing_dir.mkdir(parents=True)
    generate_sample(settings.landing_dir, events=200, days=1, seed=11)
    landed = run_cli(settings, "land")
    assert landed.returncode == 0, landed.stderr
    assert "[postgres] batches: landed 1; rows in" in landed.stdout and "***" not in landed.stdout
    status = run_cli(settings, "status", "--json")
    assert status.returncode == 0 and "***" not in status.stdout
    missing = tmp_path / "inbox-x"
    result = run_cli(settings, "land", EVIDENT_LANDING_DIR=str(missing))
    assert result.returncode == 2
    assert f"the landing dir {missing} does not exist (EVIDENT_LANDING_DIR" in result.stderr
    assert "***" not in result.stderr
    # In DSN form the password is masked even though it is one letter.
    bad = make_conninfo(one_letter_dsn, port="notaport")
    result = run_cli(settings_for(tmp_path / "bad", bad), "status")
    assert result.returncode == 2 and "is not a port number" in result.stderr
    assert ":x@" not in result.stderr and "password=x" not in result.stderr


def test_the_dsn_password_never_reaches_any_output(fresh_pg_dsn, tmp_path):
    password = conninfo_to_dict(fresh_pg_dsn)["password"]
    settings = settings_for(tmp_path, fresh_pg_dsn)
    generate_sample(settings.landing_dir, events=500, days=2, seed=3, defect_rate=0.01)
    outputs = []
    for args in (["--log-level", "debug", "land"], ["--log-format", "json", "--log-level", "debug", "status"],
                 ["status", "--json"]):
        result = run_cli(settings, *args)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout + result.stderr)
    # A failing connection (wrong database) and a wrong password must not echo the secret either.
    bad_db = make_conninfo(fresh_pg_dsn, dbname="no_such_db")
    bad_pw = make_conninfo(fresh_pg_dsn, password=password + "x")
    for dsn in (bad_db, bad_pw):
        result = run_cli(settings_for(tmp_path / "bad", dsn), "--log-level", "debug", "land")
        assert result.returncode != 0
        assert "error" in result.stderr
        outputs.append(result.stdout + result.stderr)
    for text in outputs:
        assert password not in text


def test_the_reader_role_reads_published_and_nothing_else(fresh_pg_dsn):
    engine = PostgresEngine(fresh_pg_dsn)
    setup_reader_role(engine)
    engine.execute("create table if not exists published.fct_x (n int)")
    engine.execute("insert into published.fct_x values (1)")
    engine.execute("drop role if exists bi_user")
    engine.execute("create role bi_user login password 'bi-pw'")
    engine.execute("grant evident_reader to bi_user")
    engine.close()
    with psycopg.connect(make_conninfo(fresh_pg_dsn, user="bi_user", password="bi-pw"), autocommit=True) as con:
        assert con.execute("select n from published.fct_x").fetchall() == [(1,)]
        for table in ("raw.app_events", "evident.batches", "raw.app_events_quarantine"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute(f"select * from {table}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            con.execute("insert into published.fct_x values (2)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            con.execute("create table published.mine (n int)")


def test_setup_roles_rejects_a_hostile_role_name(fresh_pg_dsn):
    engine = PostgresEngine(fresh_pg_dsn)
    try:
        with pytest.raises(Exception, match="invalid role name"):
            setup_reader_role(engine, 'x"; drop schema raw cascade; --')
    finally:
        engine.close()
