"""Helpers shared by the pipeline tests: settings per engine set-up, reading tables back, running the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import duckdb
import psycopg

from evident.config import Settings
from evident.land.validation import Validator
from evident.project import find_project

REPO = Path(__file__).resolve().parents[1]
# Columns that do not depend on how the rows were batched (batch ids, land_seq and times do).
RAW_DATA_COLUMNS = ("idempotency_key", "event_id", "user_id", "event_ts", "event_type", "value", "app_version",
                    "properties", "payload_sha256")


def settings_for(root: Path, pg_dsn: str | None = None) -> Settings:
    return Settings(project=find_project(), duckdb_path=root / "warehouse" / "warehouse.duckdb",
                    landing_dir=root / "landing", postgres_dsn=pg_dsn)


def source_dir(settings: Settings, source: str = "app_events") -> Path:
    """Where a source's files go under the landing dir (its contract's `landing` glob is `<source>/**`)."""
    folder = settings.landing_dir / source
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENT_")}
    env.update(EVIDENT_PROJECT_DIR=str(settings.project.root), EVIDENT_DUCKDB_PATH=str(settings.duckdb_path),
               EVIDENT_LANDING_DIR=str(settings.landing_dir))
    if settings.postgres_dsn:
        env["EVIDENT_POSTGRES_DSN"] = settings.postgres_dsn
    env.update(extra)
    return env


def run_cli(settings: Settings, *args: str, timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess:
    """Run `evident ARGS` in a subprocess, as a user would."""
    settings.duckdb_path.parent.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "evident.cli", *args], env=env_for(settings, **extra_env),
                          capture_output=True, text=True, timeout=timeout, cwd=settings.duckdb_path.parent.parent)


def query(settings: Settings, engine: str, sql: str) -> list[tuple]:
    """Read from one engine with a short-lived connection (DuckDB: default config, see FACTS.md)."""
    if engine == "duckdb":
        con = duckdb.connect(str(settings.duckdb_path))
        try:
            catalog = con.execute("select current_database()").fetchone()[0]
            con.execute(f'use "{catalog}".main')
            return con.execute(sql.replace("evident.", f'"{catalog}".evident.')).fetchall()
        finally:
            con.close()
    with psycopg.connect(settings.postgres_dsn) as con:
        return con.execute(sql).fetchall()


def raw_rows(settings: Settings, engine: str) -> list[tuple]:
    cols = ", ".join(RAW_DATA_COLUMNS)
    return query(settings, engine, f"select {cols} from raw.app_events order by idempotency_key")


def quarantine_rows(settings: Settings, engine: str) -> list[tuple]:
    return query(settings, engine, "select source_file, line_number, reason_code from raw.app_events_quarantine "
                                   "order by source_file, line_number")


def engines_of(settings: Settings) -> list[str]:
    return settings.engines


# ------------------------------------------------------------------ a project of one's own, the CLI from any folder
PROJECT_PARTS = ("dbt_project", "python_ingest/contracts", "expectations", "profiles")


def make_project(dest: Path) -> Path:
    """A minimal copy of this project (what discovery looks for, plus profiles/) at `dest`; returns dest."""
    import shutil

    ignore = shutil.ignore_patterns("target", "logs", "dbt_packages", "uncommitted", "__pycache__")
    for part in PROJECT_PARTS:
        shutil.copytree(REPO / part, dest / part, ignore=ignore)
    return dest


def project_settings(project_root: Path, pg_dsn: str | None = None) -> Settings:
    """Settings for a project copy, with the default paths (warehouse/warehouse.duckdb, data/landing) in it."""
    from evident.project import Project

    return Settings(project=Project(project_root), duckdb_path=project_root / "warehouse" / "warehouse.duckdb",
                    landing_dir=project_root / "data" / "landing", postgres_dsn=pg_dsn)


def clean_env(**extra: str) -> dict[str, str]:
    """The test process' environment without any EVIDENT_* variable (so no EVIDENT_PROJECT_DIR), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENT_")}
    env.update(extra)
    return env


def run_cli_in(cwd: Path, *args: str, timeout: float = 300, prefix: tuple[str, ...] = (),
               **extra_env: str) -> subprocess.CompletedProcess:
    """Run `evident ARGS` from `cwd` with no EVIDENT_* variable but `extra_env` (project found from cwd);
    `prefix` runs it under another program (e.g. without_dac_override())."""
    return subprocess.run([*prefix, sys.executable, "-m", "evident.cli", *args], env=clean_env(**extra_env),
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def without_dac_override() -> tuple[str, ...] | None:
    """A command prefix under which file permissions apply to this process even as root (root minus the
    capabilities that bypass them); () when not root; None when that cannot be had (the caller skips)."""
    import shutil
    import tempfile

    if os.geteuid() != 0:
        return ()
    if not shutil.which("setpriv"):
        return None
    prefix = ("setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--")
    with tempfile.TemporaryDirectory() as probe:
        os.chmod(probe, 0o555)
        try:
            denied = subprocess.run([*prefix, sys.executable, "-c", f"open({str(Path(probe) / 'x')!r}, 'w')"],
                                    capture_output=True, timeout=60).returncode != 0
        finally:
            os.chmod(probe, 0o755)
    return prefix if denied else None


class NamedRows(Validator):
    """A contract's validator whose rows carry names (a Row is a plain tuple: key, the fields, payload hash)."""

    def __init__(self, contract):
        super().__init__(contract)
        self.Named = namedtuple("Named", ["key", *contract.fields, "payload_sha256"])  # type: ignore[misc]
        positional = self.build
        self.build = lambda typed: self.Named(*positional(typed))


APP_EVENTS_MARTS = ("fct_sessions", "fct_daily_metrics")


def published_marts(names: tuple[str, ...] | None = APP_EVENTS_MARTS, project_root: Path = REPO) -> list:
    """The published models dbt's manifest declares (evident.build.manifest), those named (None = all)."""
    from evident.build.manifest import published_models
    from evident.project import Project

    models = published_models(Project(project_root))
    return [m for n, m in models.items() if names is None or n in names]
