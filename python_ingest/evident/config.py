"""Configuration from the environment (a `.env` file in the working directory may set it)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

DEFAULT_DUCKDB_PATH = "warehouse/evident.duckdb"
DEFAULT_LANDING_DIR = "data/landing"


def _read_dotenv(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


@dataclass(frozen=True)
class Settings:
    duckdb_path: Path
    landing_dir: Path
    postgres_dsn: str | None  # a secret: never log it, use redact() for messages
    land_workers: int | None = None  # processes validating ahead while landing; None = decide by input size

    @property
    def engines(self) -> list[str]:
        return ["duckdb", "postgres"] if self.postgres_dsn else ["duckdb"]


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Environment wins over `.env`; unset Postgres DSN means DuckDB only."""
    merged = _read_dotenv(Path(".env"))
    merged.update(os.environ if env is None else env)
    dsn = (merged.get("EVIDENT_POSTGRES_DSN") or "").strip() or None
    duckdb_path = Path(merged.get("EVIDENT_DUCKDB_PATH") or DEFAULT_DUCKDB_PATH)
    landing = Path(merged.get("EVIDENT_LANDING_DIR") or DEFAULT_LANDING_DIR)
    if duckdb_path.exists() and duckdb_path.is_dir():
        raise ConfigError(f"EVIDENT_DUCKDB_PATH points at a directory: {duckdb_path}")
    workers = (merged.get("EVIDENT_LAND_WORKERS") or "").strip()
    if workers and not workers.isdigit():
        raise ConfigError(f"EVIDENT_LAND_WORKERS must be a whole number (0 = validate in the main process), "
                          f"got {workers!r}")
    return Settings(duckdb_path=duckdb_path, landing_dir=landing, postgres_dsn=dsn,
                    land_workers=int(workers) if workers else None)
