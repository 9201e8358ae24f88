"""evident.retention: only the newest per-run folders are kept; files and a missing parent are left alone."""
from __future__ import annotations

import os

from evident.retention import prune_oldest_dirs


def test_keeps_the_newest_folders_and_leaves_files_alone(tmp_path):
    for i in range(6):
        run = tmp_path / f"run-{i}"
        (run / "duckdb").mkdir(parents=True)
        (run / "duckdb" / "manifest.json").write_text("{}")
        os.utime(run, (1_000_000 + i, 1_000_000 + i))
    (tmp_path / "notes.txt").write_text("not a run")

    assert prune_oldest_dirs(tmp_path, keep=4) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "run-2", "run-3", "run-4", "run-5"]
    assert prune_oldest_dirs(tmp_path, keep=4) == 0


def test_a_missing_folder_is_nothing_to_prune(tmp_path):
    assert prune_oldest_dirs(tmp_path / "absent", keep=1) == 0
