"""Retention of the per-run folders Evident and GX write (dbt artifacts, GX validation results).

Each run adds a folder; a warehouse refreshed every hour would fill the disk. The database keeps the history
that matters (evident.builds, evident.gate_results); these folders keep only the newest runs.
"""
from __future__ import annotations

import shutil
from pathlib import Path


def prune_oldest_dirs(parent: Path, keep: int) -> int:
    """Delete all but the `keep` most recently modified folders directly under `parent`; returns how many went.

    A folder that vanishes meanwhile (a concurrent prune) is not an error.
    """
    if not parent.is_dir():
        return 0
    folders = []
    for child in parent.iterdir():
        try:
            if child.is_dir():
                folders.append((child.stat().st_mtime, child))
        except FileNotFoundError:
            continue
    folders.sort(reverse=True)
    for _, old in folders[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return max(0, len(folders) - keep)
