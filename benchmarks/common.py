"""Shared benchmark plumbing: sample cache, a Postgres to measure against, timing, JSON results."""
from __future__ import annotations

import json
import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path

from evident.project import find_project
from evident.revision import code_revision

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
CACHE = ROOT / ".cache"


def sample_dir(events: int, days: int, seed: int = 1) -> Path:
    """A deterministic sample, generated once per size and reused (generation is not what we measure)."""
    from evident.sample import generate_sample

    out = CACHE / f"sample-{events}-{days}-{seed}"
    marker = out / ".complete"
    if not marker.exists():
        generate_sample(out, events=events, days=days, seed=seed)
        marker.write_text("ok")
    return out


@contextmanager
def postgres_dsn():
    """EVIDENT_BENCH_POSTGRES_DSN if set, else a throwaway cluster like the tests use."""
    dsn = os.environ.get("EVIDENT_BENCH_POSTGRES_DSN")
    if dsn:
        yield dsn
        return
    from tests.pgcluster import PgCluster

    with PgCluster() as cluster:
        yield cluster.dsn


class Timer:
    def __init__(self):
        self.seconds: float | None = None

    def __enter__(self):
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = round(time.perf_counter() - self._start, 3)


def write_result(name: str, result: dict) -> Path:
    """benchmarks/results/<name>.json, or under EVIDENT_BENCH_RESULTS (the benchmarks' own test writes there)."""
    results = Path(os.environ.get("EVIDENT_BENCH_RESULTS") or RESULTS)
    results.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "code_revision": code_revision(find_project().root), "machine": platform.machine(),
              "cpus": os.cpu_count(), "python": platform.python_version(), **result}
    path = results / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return path
