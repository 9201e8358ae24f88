"""CLI conventions (issue 14, part 4): `--version` with the code revision, EVIDENT_* variables for the global
options, help texts that are not cut off, and the exit codes and environment variables listed in `--help`."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from evident.sample import generate_sample
from tests.helpers import REPO, make_project, project_settings, query, run_cli, run_cli_in

DOCUMENTED_ENV = ("EVIDENT_PROJECT_DIR", "EVIDENT_DUCKDB_PATH", "EVIDENT_POSTGRES_DSN", "EVIDENT_LANDING_DIR",
                  "EVIDENT_LAND_WORKERS", "EVIDENT_LOG_FORMAT", "EVIDENT_LOG_LEVEL", "EVIDENT_CODE_REVISION")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project")


# ------------------------------------------------------------------------------------------ --version

def test_version_prints_the_version_and_the_git_revision_of_the_project():
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    result = run_cli_in(REPO, "--version")
    assert result.returncode == 0, result.stderr
    expected = rf"evident \d+\.\d+\.\d+\S* \(code revision {head}(-dirty)?, project {re.escape(str(REPO))}\)\n"
    assert re.fullmatch(expected, result.stdout), result.stdout


def test_version_names_the_recorded_revision_and_works_outside_a_project(tmp_path, project):
    result = run_cli_in(project, "--version", EVIDENT_CODE_REVISION="release-2026.12")
    assert result.returncode == 0 and "(code revision release-2026.12, project " in result.stdout
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli_in(elsewhere, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("evident ") and ", package " in result.stdout
    assert list(elsewhere.iterdir()) == []


def test_the_version_is_the_one_batches_record(project):
    settings = project_settings(project)
    generate_sample(settings.landing_dir, events=50, days=1, seed=1)
    assert run_cli(settings, "land", EVIDENT_CODE_REVISION="abc123").returncode == 0
    version = run_cli(settings, "--version", EVIDENT_CODE_REVISION="abc123").stdout
    [(recorded,)] = query(settings, "duckdb", "select distinct code_revision from evident.batches")
    assert f"code revision {recorded}," in version


# ------------------------------------------------------------------------------------------ EVIDENT_* variables

def test_evident_log_format_json_is_honoured_and_the_command_line_wins(project):
    settings = project_settings(project)
    generate_sample(settings.landing_dir, events=100, days=1, seed=2)
    result = run_cli(settings, "land", EVIDENT_LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (result.stdout + result.stderr).splitlines()]
    [(run_id,)] = query(settings, "duckdb", "select run_id from evident.runs")
    assert lines and {e["run_id"] for e in lines} == {run_id} and {e["command"] for e in lines} == {"land"}
    assert any(re.search(r"\[duckdb\] batches: landed \d+; rows in \d+, landed \d+", e["message"]) for e in lines)
    text = run_cli(settings, "--log-format", "text", "status", EVIDENT_LOG_FORMAT="json")
    assert text.returncode == 0, text.stderr
    assert text.stdout.strip() and not any(line.startswith("{") for line in text.stdout.splitlines())


@pytest.mark.parametrize("variable, value", [("EVIDENT_LOG_FORMAT", "xml"), ("EVIDENT_LOG_LEVEL", "loud")])
def test_a_bad_value_in_an_evident_variable_is_a_usage_error_naming_it(project, variable, value):
    result = run_cli_in(project, "status", **{variable: value})
    assert result.returncode == 2
    assert f"(env var: '{variable}')" in result.stderr and repr(value) in result.stderr


def test_evident_log_level_is_honoured(project):
    """Waiting for the lock is logged at info: shown at EVIDENT_LOG_LEVEL=info, not at warning."""
    from evident.control.lock import RunLock

    settings = project_settings(project)
    generate_sample(settings.landing_dir, events=20, days=1, seed=3)
    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    with RunLock(settings.duckdb_path, None, "holder-run", "build"):
        quiet = run_cli(settings, "land", "--wait=0.5", EVIDENT_LOG_LEVEL="warning", EVIDENT_LOG_FORMAT="json")
        told = run_cli(settings, "land", "--wait=0.5", EVIDENT_LOG_LEVEL="info", EVIDENT_LOG_FORMAT="json")
    assert quiet.returncode == told.returncode == 75
    waiting = [json.loads(x) for x in told.stderr.splitlines() if "waiting for" in x]
    assert waiting and waiting[0]["level"] == "info" and waiting[0]["logger"] == "evident.control.lock"
    assert "waiting for" not in quiet.stderr and "holder-run" in quiet.stderr


def test_a_usage_error_under_json_logs_is_a_json_line(project):
    for args in (["--log-format", "json", "--no-such-option"], ["--log-format=json", "run", "--no-such"]):
        result = run_cli_in(project, *args)
        assert result.returncode == 2
        [line] = [json.loads(x) for x in (result.stdout + result.stderr).splitlines()]
        assert line["reason"] == "usage" and "No such option" in line["message"] and line["run_id"] is None


# ------------------------------------------------------------------------------------------ --help

def help_of(*args: str, columns: int = 80) -> str:
    result = run_cli_in(REPO, *args, "--help", COLUMNS=str(columns))
    assert result.returncode == 0, result.stderr
    return result.stdout


def commands() -> list[str]:
    from evident.cli import cli

    return sorted(cli.commands)


@pytest.mark.parametrize("columns", [60, 80, 140])
def test_help_lists_every_command_with_its_whole_first_sentence(columns):
    from evident.cli import cli

    text = help_of(columns=columns)
    listing = text.split("Commands:")[1].split("Environment")[0]
    assert "..." not in listing
    flat = "".join(listing.split())  # wrapped lines (and words broken at a hyphen) joined again
    for name, command in cli.commands.items():
        first = "".join((command.help or "").split(". ")[0].split())
        assert f"{name}{first}" in flat, (name, command.help)


def test_help_lists_the_exit_codes_and_the_environment_variables():
    text = " ".join(help_of().split())
    for variable in DOCUMENTED_ENV:
        assert variable in text
    for code, meaning in (("0", "success"), ("1", "the data failed"), ("2", "usage or configuration error"),
                          ("70", "internal error, a bug"), ("75", "temporary")):
        assert f" {code} {meaning}" in text
    assert "[env var: EVIDENT_LOG_FORMAT; default: text]" in text


def test_every_command_has_help_that_exits_0():
    for name in commands():
        assert "Usage: evident " + name in help_of(name)
    assert "--json" in help_of("run")
