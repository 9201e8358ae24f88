"""deploy/: every `evident` command and option and every `make` target the schedule and CI files name exists,
and the systemd units pass `systemd-analyze verify` (that one check is skipped where the tool is absent)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from evident.cli import cli
from tests.helpers import REPO

DEPLOY = REPO / "deploy"
INSTALL_DIR = "/opt/evident"  # where the files expect the project; the tests put this checkout there
CONFIG_FILES = sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix != ".md")
UNITS = sorted(p for p in (DEPLOY / "systemd").iterdir() if p.suffix in (".service", ".timer"))
SHELL_OPERATORS = {"&&", "||", ";", "|", "&"}


def evident_invocations() -> list[tuple[str, list[str], str, list[str]]]:
    """(file, global options, command, options after it) of every `…/bin/evident …` in the deploy files."""
    found = []
    for path in CONFIG_FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            tokens = line.split()
            for i, token in enumerate(tokens):
                if not re.fullmatch(r"(?:\w+=)?\S*bin/evident", token):
                    continue
                rest = tokens[i + 1:]
                global_opts: list[str] = []
                while rest and rest[0].startswith("-"):
                    option = rest.pop(0)
                    global_opts.append(option)
                    if "=" not in option and _takes_value(cli, option) and rest:
                        global_opts.append(rest.pop(0))
                assert rest, f"{path.name}: `{line.strip()}` names no command"
                command, options = rest.pop(0), []
                for t in rest:
                    if t in SHELL_OPERATORS or t.startswith((">", "2>", "<")):
                        break
                    options.append(t)
                found.append((str(path.relative_to(REPO)), global_opts, command, options))
    return found


def _takes_value(command: click.Command, option: str) -> bool:
    for param in command.params:
        if isinstance(param, click.Option) and option in param.opts + param.secondary_opts:
            return not param.is_flag
    return False


def make_targets() -> list[tuple[str, str]]:
    return [(str(p.relative_to(REPO)), m[1]) for p in CONFIG_FILES
            for m in re.finditer(r"\bmake\s+([a-z][\w-]*)", p.read_text(encoding="utf-8"))]


def test_the_deploy_files_are_there():
    names = {str(p.relative_to(DEPLOY)) for p in CONFIG_FILES}
    assert {"cron/evident", "ci/github-actions.yml", "systemd/evident-run.service", "systemd/evident-run.timer",
            "systemd/evident-full-refresh.service", "systemd/evident-full-refresh.timer"} <= names
    commands = {(c, tuple(o)) for _, _, c, o in evident_invocations()}
    assert ("run", ()) in commands and ("run", ("--full-refresh", "--wait=3600")) in commands
    workflow = yaml.safe_load((DEPLOY / "ci/github-actions.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "schedule" in triggers and "push" in triggers
    steps = [s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"]]
    assert "make lint" in steps and "make test" in steps
    scheduled = workflow["jobs"]["scheduled-run"]
    assert scheduled["env"]["EVIDENT_POSTGRES_DSN"] == "${{ secrets.EVIDENT_POSTGRES_DSN }}"
    assert any("evident --log-format json run" in s.get("run", "") for s in scheduled["steps"])


@pytest.mark.parametrize("where, global_opts, command, options",
                         evident_invocations(), ids=lambda v: v if isinstance(v, str) else None)
def test_every_evident_command_named_exists(where, global_opts, command, options):
    assert command in cli.commands, f"{where}: `evident {command}` is not a command"
    result = subprocess.run([sys.executable, "-m", "evident.cli", *global_opts, command, "--help"],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "EVIDENT_PROJECT_DIR": str(REPO)})
    assert result.returncode == 0, f"{where}: evident {' '.join(global_opts)} {command} --help: {result.stderr}"
    known = {o for p in cli.commands[command].params if isinstance(p, click.Option)
             for o in p.opts + p.secondary_opts}
    for option in options:
        if option.startswith("-"):
            assert option.split("=")[0] in known, f"{where}: `evident {command}` has no option {option}"


@pytest.mark.parametrize("where, target", make_targets())
def test_every_make_target_named_exists(where, target):
    result = subprocess.run(["make", "-n", "-C", str(REPO), target], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{where}: make {target}: {result.stderr}"


def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path: Path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here")
    for unit in UNITS:  # installed where they expect the project: this checkout stands in for /opt/evident
        (tmp_path / unit.name).write_text(unit.read_text(encoding="utf-8").replace(INSTALL_DIR, str(REPO)),
                                          encoding="utf-8")
    assert {u.name for u in UNITS} >= {"evident-run.service", "evident-run.timer",
                                       "evident-full-refresh.service", "evident-full-refresh.timer"}
    result = subprocess.run([tool, "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # warnings too: an unknown key is only a warning


def test_each_timer_starts_an_existing_service():
    for timer in (u for u in UNITS if u.suffix == ".timer"):
        started = re.search(r"^Unit=(\S+)$", timer.read_text(), re.MULTILINE)
        assert started and (timer.parent / started[1]).is_file(), timer.name
        assert started[1] == timer.with_suffix(".service").name
