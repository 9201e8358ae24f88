"""`make bench`: every benchmark in turn, results as JSON under benchmarks/results/.

Sizes follow the issues (1M events landed, 10M-event histories for dbt and reconciliation); pass
BENCH_SCALE=0.1 (or any factor) in the environment for a quicker, smaller run.
"""
from __future__ import annotations

import os

from benchmarks import bench_dbt, bench_gate, bench_landing, bench_reconcile


def main() -> None:
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    bench_landing.main(["--events", str(int(1_000_000 * scale))])
    bench_dbt.main(["--events", str(int(10_000_000 * scale))])
    bench_gate.main(["--events", str(int(10_000_000 * scale))])
    bench_reconcile.main(["--events", str(int(10_000_000 * scale))])


if __name__ == "__main__":
    main()
