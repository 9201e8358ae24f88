"""What every sample generator does alike: check its sizes, and list the defects it planted beside the files."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path


def check_sizes(count_name: str, count: int, days: int, defect_rate: float, per_part_name: str,
                per_part: int) -> None:
    if count < 1:
        raise ValueError(f"{count_name} must be at least 1 (got {count})")
    if days < 1:
        raise ValueError(f"days must be at least 1 (got {days})")
    if not 0.0 <= defect_rate <= 1.0:
        raise ValueError(f"defect_rate must be between 0 and 1 (got {defect_rate})")
    if per_part < 1:
        raise ValueError(f"{per_part_name} must be at least 1 (got {per_part})")


def write_defect_list(path: Path, defects: list, planted: bool) -> Path | None:
    """The planted defects as JSON at `path` (dataclasses); without planting, a stale list from an earlier run
    is removed — it would describe defects that are not there."""
    if planted:
        path.write_bytes((json.dumps([asdict(d) for d in defects], indent=2, ensure_ascii=False) + "\n").encode())
        return path
    path.unlink(missing_ok=True)
    return None
