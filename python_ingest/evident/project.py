"""The project Evident works on: the folder holding dbt_project/, python_ingest/contracts/ and expectations/.

It is EVIDENT_PROJECT_DIR, else the nearest folder upward from the working directory that holds all three.
Outside any project every command exits 2 saying so — never an empty new warehouse somewhere.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from evident.errors import ConfigError

MARKERS = ("dbt_project", "python_ingest/contracts", "expectations")
ENV_PROJECT_DIR = "EVIDENT_PROJECT_DIR"


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def dbt_project_dir(self) -> Path:
        return self.root / "dbt_project"

    @property
    def profiles_dir(self) -> Path:
        return self.root / "profiles"

    @property
    def contracts_dir(self) -> Path:
        return self.root / "python_ingest" / "contracts"

    @property
    def expectations_dir(self) -> Path:
        return self.root / "expectations"

    @property
    def target_dir(self) -> Path:
        """dbt's working folders, per-run artifacts and docs (git-ignored)."""
        return self.root / "target"

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """A configured path: relative ones are relative to the project folder, not the working directory."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.root / p


def is_project(folder: Path) -> bool:
    return all((folder / marker).is_dir() for marker in MARKERS)


def find_project(env: dict[str, str] | None = None, cwd: Path | None = None) -> Project:
    env = dict(os.environ) if env is None else env
    configured = (env.get(ENV_PROJECT_DIR) or "").strip()
    if configured:
        root = Path(configured).expanduser().resolve()
        if not is_project(root):
            missing = [m for m in MARKERS if not (root / m).is_dir()]
            raise ConfigError(f"{ENV_PROJECT_DIR}={configured} is not an Evident project "
                              f"(missing: {', '.join(missing)})")
        return Project(root)
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if is_project(folder):
            return Project(folder)
    raise ConfigError(f"not inside an Evident project: no folder from {start} upward holds "
                      f"{', '.join(m + '/' for m in MARKERS)}; cd into the project or set {ENV_PROJECT_DIR}")
