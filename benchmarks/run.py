"""`make bench`: every benchmark, results as JSON under benchmarks/results/."""
from __future__ import annotations

import sys

from . import bench_landing


def main() -> None:
    args = sys.argv[1:]
    bench_landing.main(args)


if __name__ == "__main__":
    main()
