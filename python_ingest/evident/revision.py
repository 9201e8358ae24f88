"""The code revision recorded with every batch and run (replay metadata): the project's git commit."""
from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from evident import __version__


@functools.lru_cache(maxsize=8)
def code_revision(project_root: Path) -> str:
    """git commit of the project (with -dirty when the tree has changes), else EVIDENT_CODE_REVISION, else
    the package version."""
    if os.environ.get("EVIDENT_CODE_REVISION"):
        return os.environ["EVIDENT_CODE_REVISION"]
    try:
        head = subprocess.run(["git", "-C", str(project_root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(project_root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"{head}{'-dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return f"evident-{__version__}"
