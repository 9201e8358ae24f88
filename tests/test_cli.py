"""Mistakes that look like success or like bad data: each one gets its own exit code and a message that says
what is wrong (DESIGN: exit codes; project and configuration)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import psycopg
import pytest

from evident.config import load_settings
from evident.project import Project
from evident.sample import generate_sample
from tests.helpers import (
    make_project,
    project_settings,
    query,
    run_cli,
    run_cli_in,
    without_dac_override,
)

COMMANDS = (["land"], ["run"], ["build"], ["gate"], ["publish"], ["reconcile"], ["status"], ["docs"],
            ["setup-roles"], ["sample", "--out", "out"])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project")


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*"))


def crash_report(stderr: str) -> Path:
    match = re.search(r"traceback written to (\S+\.txt); please report it", stderr)
    assert match, stderr
    return Path(match.group(1))


# ------------------------------------------------------------------------------------------ exit 70: a bug

def test_an_unexpected_exception_is_a_bug_exit_70_with_the_traceback_in_a_file(project):
    settings = project_settings(project)
    generate_sample(settings.landing_dir, events=200, days=2, seed=1)
    result = run_cli(settings, "land", EVIDENT_FAULT="land.duckdb.validated:raise")
    assert result.returncode == 70, result.stderr
    assert "internal error (a bug in Evident): InjectedFault: injected fault at land.duckdb.validated" \
        in result.stderr
    assert "Traceback" not in result.stderr  # the traceback goes to the file, the message says where
    report = crash_report(result.stderr)
    assert report.parent == project / "target" / "crash" and report.is_file()
    text = report.read_text()
    assert "evident land" in text and "Traceback (most recent call last)" in text
    assert "faults.py" in text and "InjectedFault: injected fault at land.duckdb.validated" in text
    # Nothing is half-done: a rerun lands everything.
    rerun = run_cli(settings, "land")
    assert rerun.returncode == 0, rerun.stderr
    assert query(settings, "duckdb", "select count(*) from raw.app_events")[0][0] == 200


def test_a_bug_after_landing_keeps_what_landed_and_the_rerun_publishes(project):
    settings = project_settings(project)
    generate_sample(settings.landing_dir, events=300, days=2, seed=2)
    result = run_cli(settings, "run", EVIDENT_FAULT="gate.before:raise")
    assert result.returncode == 70, result.stderr
    assert "internal error (a bug in Evident): InjectedFault: injected fault at gate.before" in result.stderr
    assert "gate.before" in crash_report(result.stderr).read_text()
    assert query(settings, "duckdb", "select count(*) from raw.app_events")[0][0] == 300
    assert query(settings, "duckdb", "select distinct state from evident.batches") == [("built",)]
    assert query(settings, "duckdb", "select status from evident.runs where command = 'run'") == [("failed",)]
    rerun = run_cli(settings, "run")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert query(settings, "duckdb", "select distinct state from evident.batches") == [("published",)]


def test_the_crash_report_goes_to_the_temp_dir_outside_a_project(tmp_path, monkeypatch):
    from evident import cli

    monkeypatch.delenv("EVIDENT_PROJECT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    try:
        {}["missing"]
    except KeyError as exc:
        report = cli.write_crash_report(exc, ["status"])
    assert report is not None and report.parent == tmp_path / "tmp" / "evident-crash"
    assert "KeyError: 'missing'" in report.read_text()


# ------------------------------------------------------------------------------------------ the project

@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_outside_a_project_every_command_exits_2_and_creates_nothing(tmp_path, args):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli_in(elsewhere, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "not inside an Evident project" in result.stderr and "EVIDENT_PROJECT_DIR" in result.stderr
    assert files_under(elsewhere) == []


def test_a_project_dir_that_is_not_a_project_exits_2(tmp_path):
    (tmp_path / "not_a_project" / "dbt_project").mkdir(parents=True)
    result = run_cli_in(tmp_path, "status", EVIDENT_PROJECT_DIR=str(tmp_path / "not_a_project"))
    assert result.returncode == 2
    assert "is not an Evident project" in result.stderr
    assert "missing: python_ingest/contracts, expectations" in result.stderr
    assert files_under(tmp_path / "not_a_project") == [tmp_path / "not_a_project" / "dbt_project"]


def test_relative_paths_and_the_env_file_are_relative_to_the_project_not_the_cwd(project):
    (project / ".env").write_text('EVIDENT_LANDING_DIR="inbox/files" # where files arrive\n'
                                  "EVIDENT_DUCKDB_PATH='wh/main.duckdb'   # the warehouse\n")
    generate_sample(project / "inbox" / "files", events=100, days=1, seed=4)
    subfolder = project / "dbt_project" / "models"
    before = files_under(subfolder)
    result = run_cli_in(subfolder, "land")
    assert result.returncode == 0, result.stderr
    assert (project / "wh" / "main.duckdb").is_file()
    assert files_under(subfolder) == before  # nothing created where the command was typed
    assert run_cli_in(project / "python_ingest", "status").stdout.count("rows landed: 100") == 1


def test_the_default_warehouse_is_warehouse_duckdb_in_the_project(project):
    generate_sample(project / "data" / "landing", events=50, days=1, seed=5)
    result = run_cli_in(project / "expectations", "land")
    assert result.returncode == 0, result.stderr
    assert (project / "warehouse" / "warehouse.duckdb").is_file()


def test_dotenv_quotes_and_comments_follow_python_dotenv(project):
    (project / ".env").write_text(
        'EVIDENT_LANDING_DIR="data/in" # where files arrive\n'
        "EVIDENT_DUCKDB_PATH='/srv/wh # not a comment inside quotes.duckdb'\n"
        "EVIDENT_LAND_WORKERS=2 # two\n"
        "export EVIDENT_POSTGRES_DSN=\n")
    settings = load_settings(env={}, project=Project(project))
    assert settings.landing_dir == project / "data" / "in"
    assert settings.duckdb_path == Path("/srv/wh # not a comment inside quotes.duckdb")
    assert settings.land_workers == 2 and settings.postgres_dsn is None
    # The process environment wins over .env.
    assert load_settings(env={"EVIDENT_LANDING_DIR": "/abs"}, project=Project(project)).landing_dir == Path("/abs")


# ------------------------------------------------------------------------------------------ the landing dir

@pytest.mark.parametrize("command", ["land", "run"])
def test_a_landing_dir_that_does_not_exist_exits_2_naming_it(project, command):
    settings = project_settings(project)
    result = run_cli(settings, command)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"the landing dir {settings.landing_dir} does not exist" in result.stderr
    assert "EVIDENT_LANDING_DIR" in result.stderr
    assert not settings.duckdb_path.parent.exists()  # no warehouse made for a run that cannot read anything


# ------------------------------------------------------------------------------------------ status reads only

def test_status_with_a_mistyped_duckdb_path_exits_2_and_creates_nothing(project):
    settings = project_settings(project)
    typo = project / "warehuose" / "warehouse.duckdb"
    result = run_cli(settings, "status", EVIDENT_DUCKDB_PATH=str(typo))
    assert result.returncode == 2, result.stderr
    assert f"no DuckDB warehouse at {typo}" in result.stderr and "EVIDENT_DUCKDB_PATH" in result.stderr
    assert not typo.parent.exists()


@pytest.mark.postgres
def test_status_runs_no_ddl_on_postgres_and_keeps_its_output(project, fresh_pg_dsn):
    duckdb_only = project_settings(project)
    generate_sample(duckdb_only.landing_dir, events=100, days=1, seed=6)
    assert run_cli(duckdb_only, "land").returncode == 0
    result = run_cli(project_settings(project, fresh_pg_dsn), "status")
    assert result.returncode == 0, result.stderr
    assert "[postgres] batches: none" in result.stdout and "nothing has run here yet" in result.stdout
    assert "[duckdb] batches: landed 1" in result.stdout and "rows landed: 100" in result.stdout
    assert "last successful land: 20" in result.stdout
    with psycopg.connect(fresh_pg_dsn) as con:
        schemas = {r[0] for r in con.execute("select schema_name from information_schema.schemata")}
    assert not schemas & {"evident", "raw", "analytics", "published"}


# ------------------------------------------------------------------------------------------ the DuckDB file

@pytest.mark.parametrize("file_present", [False, True], ids=["file_absent", "file_present"])
def test_a_read_only_warehouse_folder_exits_2_with_a_clear_message(project, file_present):
    prefix = without_dac_override()
    if prefix is None:
        pytest.skip("cannot run a process that file permissions apply to (root without setpriv)")
    settings = project_settings(project)
    generate_sample(settings.landing_dir, events=100, days=1, seed=7)
    if file_present:
        assert run_cli(settings, "land").returncode == 0
        generate_sample(settings.landing_dir / "app_events" / "late", events=20, days=1, seed=8)
    else:
        settings.duckdb_path.parent.mkdir()
    folder = settings.duckdb_path.parent
    os.chmod(folder, 0o555)
    try:
        result = run_cli_in(project, "land", prefix=prefix)
        status = run_cli_in(project, "status", prefix=prefix)
    finally:
        os.chmod(folder, 0o755)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "retries_exhausted" not in result.stderr
    assert str(folder) in result.stderr and "writable" in result.stderr
    assert "EVIDENT_DUCKDB_PATH" in result.stderr
    if file_present:
        assert status.returncode == 0, status.stderr  # reading still works
        assert "rows landed: 100" in status.stdout
    else:
        assert status.returncode == 2 and "no DuckDB warehouse at" in status.stderr
        assert sorted(folder.iterdir()) == []


@pytest.mark.parametrize("command", ["land", "status"])
def test_a_file_that_is_not_a_duckdb_database_exits_2(project, command):
    settings = project_settings(project)
    settings.landing_dir.mkdir(parents=True)
    settings.duckdb_path.parent.mkdir()
    settings.duckdb_path.write_text("id,name\n1,not a database\n")
    result = run_cli(settings, command)
    assert result.returncode == 2, result.stderr
    assert "not a valid DuckDB database file" in result.stderr and str(settings.duckdb_path) in result.stderr
    assert settings.duckdb_path.read_text() == "id,name\n1,not a database\n"


# ------------------------------------------------------------------------------------------ the Postgres DSN

@pytest.mark.parametrize("dsn, says", [
    ("host=localhost port=notaport password=sekrit-pw", "port 'notaport' is not a port number"),
    ("postgresql://evident:sekrit-pw@[bad", "is not a valid libpq URL or key=value DSN"),
    ("host=localhost password=sekrit-pw dbname", "is not a valid libpq URL or key=value DSN"),
], ids=["bad_port", "bad_url", "bad_key_value"])
@pytest.mark.parametrize("command", ["land", "status"])
def test_a_malformed_dsn_is_a_usage_error_without_the_password(project, dsn, says, command):
    settings = project_settings(project)
    settings.landing_dir.mkdir(parents=True)
    result = run_cli(settings, command, EVIDENT_POSTGRES_DSN=dsn)
    assert result.returncode == 2, result.stderr
    assert "EVIDENT_POSTGRES_DSN" in result.stderr and says in result.stderr
    assert "sekrit" not in result.stdout + result.stderr
    assert "retry" not in result.stderr  # found before any connection attempt
    assert not settings.duckdb_path.parent.exists()


@pytest.mark.postgres
@pytest.mark.parametrize("wrong", ["password", "dbname"])
@pytest.mark.parametrize("command", ["build", "status"])
def test_a_wrong_password_or_database_is_a_configuration_error_not_an_outage(project, fresh_pg_dsn, wrong,
                                                                            command):
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    password = conninfo_to_dict(fresh_pg_dsn)["password"]
    dsn = make_conninfo(fresh_pg_dsn, **{wrong: "not_" + (password if wrong == "password" else "this_db")})
    settings = project_settings(project, dsn)
    duckdb_only = project_settings(project)
    settings.landing_dir.mkdir(parents=True)
    if command == "status":
        assert run_cli(duckdb_only, "land").returncode == 0  # a warehouse to read, so Postgres is what fails
    result = run_cli(settings, command)
    assert result.returncode == 2, result.stderr
    assert ("password authentication failed" if wrong == "password" else 'database "not_this_db" does not exist') \
        in result.stderr
    assert "retry" not in result.stderr and password not in result.stdout + result.stderr
