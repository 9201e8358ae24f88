"""Configuration: the project (evident.project) and the environment (its `.env` file may set it too).

A `.env` file in the project folder is read with python-dotenv's quoting and comment rules; the process
environment wins over it. Relative paths are relative to the project folder.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from evident.engines.postgres import parse_dsn
from evident.errors import ConfigError
from evident.project import Project, find_project
from evident.secrets import register_dsn

DEFAULT_DUCKDB_PATH = "warehouse/warehouse.duckdb"
DEFAULT_LANDING_DIR = "data/landing"


def read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


@dataclass(frozen=True)
class Settings:
    project: Project
    duckdb_path: Path
    landing_dir: Path
    postgres_dsn: str | None  # a secret: never log it, use redact() for messages
    land_workers: int | None = None  # processes validating ahead while landing; None = decide by input size

    @property
    def engines(self) -> list[str]:
        return ["duckdb", "postgres"] if self.postgres_dsn else ["duckdb"]


def load_settings(env: dict[str, str] | None = None, project: Project | None = None) -> Settings:
    """Environment wins over `.env`; unset Postgres DSN means DuckDB only."""
    environ = dict(os.environ) if env is None else env
    project = project or find_project(environ)
    merged = read_dotenv(project.root / ".env")
    merged.update(environ)
    dsn = (merged.get("EVIDENT_POSTGRES_DSN") or "").strip() or None
    if dsn:
        register_dsn(dsn)
        parse_dsn(dsn)  # malformed → ConfigError now, not a retried connection failure later
    duckdb_path = project.resolve(merged.get("EVIDENT_DUCKDB_PATH") or DEFAULT_DUCKDB_PATH)
    landing = project.resolve(merged.get("EVIDENT_LANDING_DIR") or DEFAULT_LANDING_DIR)
    if duckdb_path.is_dir():
        raise ConfigError(f"EVIDENT_DUCKDB_PATH points at a directory: {duckdb_path}")
    workers = (merged.get("EVIDENT_LAND_WORKERS") or "").strip()
    if workers and not workers.isdigit():
        raise ConfigError(f"EVIDENT_LAND_WORKERS must be a whole number (0 = validate in the main process), "
                          f"got {workers!r}")
    return Settings(project=project, duckdb_path=duckdb_path, landing_dir=landing, postgres_dsn=dsn,
                    land_workers=int(workers) if workers else None)


def require_landing_dir(settings: Settings) -> Path:
    """The landing dir of a command that reads it (land, run): missing is a configuration error, never
    "nothing to do" — a mistyped path would otherwise look like a quiet day."""
    path = settings.landing_dir
    where = f"EVIDENT_LANDING_DIR, default {DEFAULT_LANDING_DIR}; relative paths are relative to the project " \
            f"folder {settings.project.root}"
    if not path.exists():
        raise ConfigError(f"the landing dir {path} does not exist ({where}); create it or point "
                          "EVIDENT_LANDING_DIR at the folder where source files arrive")
    if not path.is_dir():
        raise ConfigError(f"the landing dir {path} is not a directory ({where})")
    return path


@contextmanager
def temporary_environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block (dbt and GX read their settings from there)."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        os.environ.update(values)
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
