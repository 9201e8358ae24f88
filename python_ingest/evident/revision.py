"""The code revision recorded with every batch and run (replay metadata)."""
from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from . import __version__

REPO_ROOT = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=1)
def code_revision() -> str:
    """git commit (with -dirty when the tree has changes), else EVIDENT_CODE_REVISION, else the version."""
    if os.environ.get("EVIDENT_CODE_REVISION"):
        return os.environ["EVIDENT_CODE_REVISION"]
    try:
        head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"{head}{'-dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return f"evident-{__version__}"
