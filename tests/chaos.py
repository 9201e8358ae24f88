"""Fault-injection harness: `evident run` killed with SIGKILL at named fault points and random moments.

A chain of deliveries. In each, the run is killed, then its rerun is killed at a later point, and so on
(--per-delivery kills, default 3: a crash during recovery from a crash is the harder case), then reruns go
until one succeeds. After every delivery, raw.app_events must equal (by fingerprint) a reference that landed
the same files, with no duplicate key and no batch stuck in a non-terminal state; after the last, the published
marts must equal one uninterrupted run, and with Postgres the two engines must agree.

    python -m tests.chaos --kill-points 200 [--per-delivery 3] [--no-postgres]   (what `make chaos N=200` runs)
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from evident.config import Settings
from evident.engines import DuckDBEngine, Engine, PostgresEngine
from evident.fingerprint import Column
from evident.fingerprint import fingerprint as table_fingerprint
from evident.sample import generate_sample
from tests.helpers import env_for, published_marts, settings_for

FAULT_POINTS = [
    "land.postgres.validated", "land.postgres.mid_transaction", "land.postgres.before_commit",
    "land.after_postgres", "land.duckdb.validated", "land.duckdb.mid_transaction", "land.duckdb.before_commit",
    "land.after_duckdb", "build.before_dbt", "build.postgres.after_dbt", "build.duckdb.after_dbt",
    "gate.before", "publish.postgres.fct_sessions", "publish.postgres.fct_daily_metrics",
    "publish.duckdb.fct_sessions", "publish.duckdb.fct_daily_metrics", "run.after_publish",
    "reconcile.before", "reconcile.after_store", "reconcile.postgres.after_mark", "reconcile.duckdb.after_mark",
]
RAW_COLUMNS = [Column("idempotency_key", "text"), Column("event_id", "text"), Column("user_id", "int"),
               Column("event_ts", "timestamp"), Column("event_type", "text"), Column("value", "decimal"),
               Column("app_version", "text"), Column("properties", "text")]
# Where every batch must be after a successful run: reconciled when both engines are configured (published on
# DuckDB alone, which has nothing to reconcile against), or failed with a reason.


@dataclass
class Outcome:
    """One kill point. The checks (lost, dup, stuck, equal) are those of the delivery it was part of, made after
    the delivery's clean rerun; several kill points can share one delivery."""

    delivery: int
    kill: str
    killed: bool
    reruns: int
    lost_rows: int
    duplicate_keys: int
    stuck_batches: int
    marts_equal: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return self.lost_rows == 0 and self.duplicate_keys == 0 and self.stuck_batches == 0 and self.marts_equal


def open_engines(settings: Settings) -> list[Engine]:
    engines: list[Engine] = [DuckDBEngine(settings.duckdb_path)]
    if settings.postgres_dsn:
        engines.append(PostgresEngine(settings.postgres_dsn))
    return engines


def snapshot(settings: Settings) -> dict:
    """Per engine: fingerprints of raw rows and published marts, duplicate keys, batches not where a successful
    run leaves them (stuck)."""
    final = "reconciled" if settings.postgres_dsn else "published"
    snap = {}
    for engine in open_engines(settings):
        try:
            published = {r[0] for r in engine.fetchall(
                "select table_name from information_schema.tables where table_schema = 'published'")}
            marts = {m.name: table_fingerprint(engine, m.published, [c.as_fingerprint_column() for c in m.columns])
                     if m.name in published else None for m in published_marts(None)}
            snap[engine.name] = {
                "raw": table_fingerprint(engine, "raw.app_events", RAW_COLUMNS),
                "marts": marts,
                "duplicate_keys": engine.fetchone(
                    "select count(*) - count(distinct idempotency_key) from raw.app_events")[0],
                "stuck": engine.fetchone("select count(*) from evident.batches where state not in (%s, 'failed')",
                                         [final])[0],
            }
        finally:
            engine.close()
    return snap


def run_evident(settings: Settings, fault: str | None = None, kill_after: float | None = None,
                timeout: float = 900) -> int:
    env = env_for(settings, **({"EVIDENT_FAULT": f"{fault}:kill"} if fault else {}))
    proc = subprocess.Popen([sys.executable, "-m", "evident.cli", "run"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        if kill_after is not None:
            try:
                proc.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                proc.kill()
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    if proc.returncode not in (0, -9):
        raise RuntimeError(f"evident run exited {proc.returncode}: {err[-2000:]}")
    return proc.returncode


def deliveries(root: Path, count: int, seed: int) -> list[list[Path]]:
    """`count` deliveries, each a few small JSONL files (late events and duplicates among them)."""
    out = root / "source"
    generate_sample(out, events=max(count * 40, 200), days=max(2, min(count, 10)), seed=seed,
                    lines_per_part=40)
    files = sorted(out.rglob("*.jsonl"))
    chunks = [files[i::count] for i in range(count)] if len(files) >= count else [[f] for f in files]
    return [sorted(c) for c in chunks if c]


def deliver(files: list[Path], source_root: Path, settings: Settings) -> None:
    for path in files:
        target = settings.landing_dir / path.relative_to(source_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)


def compare(reference: dict, actual: dict, marts: bool) -> tuple[int, bool]:
    lost, equal = 0, True
    for engine, ref in reference.items():
        got = actual[engine]
        lost += max(0, ref["raw"][0] - got["raw"][0])
        equal &= got["raw"] == ref["raw"] and (not marts or got["marts"] == ref["marts"])
    engines = list(actual.values())
    # Both engines configured: they must also agree with each other.
    equal &= all(e["raw"] == engines[0]["raw"] and (not marts or e["marts"] == engines[0]["marts"])
                 for e in engines)
    return lost, equal


def land_only(settings: Settings) -> None:
    result = subprocess.run([sys.executable, "-m", "evident.cli", "land"], env=env_for(settings),
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"reference land failed: {result.stderr[-2000:]}")


def kill_plan(kill_points: int, per_delivery: int, points: list[str], random_every: int,
              rng: random.Random) -> list[list[str]]:
    """`kill_points` kills in deliveries of `per_delivery`: every named point in turn, a random moment as every
    `random_every`-th kill. Within a delivery the named kills come in pipeline order, so each rerun gets past
    the point that killed the run before it and dies at a later one; a random moment comes last (a run killed
    at random may have got past the named points of its delivery already)."""
    named = itertools.cycle(points)
    flat = [f"random:{rng.uniform(0.5, 20):.2f}" if random_every and i % random_every == random_every - 1
            else next(named) for i in range(kill_points)]
    position = {p: i for i, p in enumerate(FAULT_POINTS)}
    return [sorted(flat[i:i + per_delivery], key=lambda k: position.get(k, len(position)))
            for i in range(0, len(flat), per_delivery)]


def chaos(kill_points: int, pg_dsn_factory, seed: int = 7, workdir: Path | None = None, points=None,
          random_every: int = 3, per_delivery: int = 3, log=print) -> list[Outcome]:
    """Deliveries of new files; in each, `evident run` is killed `per_delivery` times (a run, then its reruns),
    then rerun until it succeeds.

    After every delivery the raw rows must equal a reference warehouse that only landed the same files
    (landing is cheap); after the last one, the published marts must equal one uninterrupted `evident run`
    over everything (incremental runs equal a full run over the same raw rows, so that is the reference).
    """
    root = Path(workdir or tempfile.mkdtemp(prefix="evident-chaos-"))
    rng = random.Random(seed)
    plan = kill_plan(kill_points, per_delivery, points or FAULT_POINTS, random_every, rng)
    chain = deliveries(root, len(plan), seed)
    if len(chain) < len(plan):
        raise RuntimeError(f"the sample split into {len(chain)} deliveries, {len(plan)} needed")
    source_root = root / "source"
    reference = settings_for(root / "reference", pg_dsn_factory())
    chaotic = settings_for(root / "chaos", pg_dsn_factory())
    outcomes = []
    for i, (files, kills) in enumerate(zip(chain, plan)):
        started = time.monotonic()
        deliver(files, source_root, reference)
        land_only(reference)
        deliver(files, source_root, chaotic)
        killed = []
        for kill in kills:
            if kill.startswith("random:"):
                code = run_evident(chaotic, kill_after=float(kill.split(":")[1]))
            else:
                code = run_evident(chaotic, fault=kill)
            killed.append(code == -9)
        reruns = 0
        while True:
            reruns += 1
            if run_evident(chaotic) == 0:
                break
            if reruns >= 3:
                raise RuntimeError(f"delivery {i}: no successful rerun after {kills}")
        expected, actual = snapshot(reference), snapshot(chaotic)
        last = i == len(plan) - 1
        if last:
            run_evident(reference)
            expected = snapshot(reference)
        lost, equal = compare(expected, actual, marts=last)
        dup = sum(s["duplicate_keys"] for s in actual.values())
        stuck = sum(s["stuck"] for s in actual.values())
        seconds = round(time.monotonic() - started, 1)
        outcomes += [Outcome(i, kill, was_killed, reruns, lost, dup, stuck, equal, seconds)
                     for kill, was_killed in zip(kills, killed)]
        log(f"{i:4d}  {' > '.join(kills):100s} killed={sum(killed)}/{len(kills)} reruns={reruns} lost={lost} "
            f"dup={dup} stuck={stuck} equal={equal}  {seconds}s")
    return outcomes


def summary_table(outcomes: list[Outcome]) -> str:
    by_kind: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_kind.setdefault("random moment" if o.kill.startswith("random:") else o.kill, []).append(o)
    lines = [f"{'kill point':36s} {'runs':>5s} {'killed':>7s} {'lost':>5s} {'dup':>4s} {'stuck':>6s} {'equal':>6s}"]
    for kind, group in sorted(by_kind.items()):
        lines.append(f"{kind:36s} {len(group):5d} {sum(o.killed for o in group):7d} "
                     f"{sum(o.lost_rows for o in group):5d} {sum(o.duplicate_keys for o in group):4d} "
                     f"{sum(o.stuck_batches for o in group):6d} {sum(o.marts_equal for o in group):6d}")
    lines.append(f"{'TOTAL kill points':36s} {len(outcomes):5d} {sum(o.killed for o in outcomes):7d} "
                 f"{sum(o.lost_rows for o in outcomes):5d} {sum(o.duplicate_keys for o in outcomes):4d} "
                 f"{sum(o.stuck_batches for o in outcomes):6d} {sum(o.marts_equal for o in outcomes):6d}")
    deliveries = list({o.delivery: o for o in outcomes}.values())  # the checks, counted once per delivery
    lines.append(f"{'TOTAL deliveries (checks)':36s} {len(deliveries):5d} {'':7s} "
                 f"{sum(o.lost_rows for o in deliveries):5d} {sum(o.duplicate_keys for o in deliveries):4d} "
                 f"{sum(o.stuck_batches for o in deliveries):6d} {sum(o.marts_equal for o in deliveries):6d}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kill-points", type=int, default=200)
    parser.add_argument("--per-delivery", type=int, default=3, help="kills per delivery before its clean rerun")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        factory = lambda: None  # noqa: E731
        if not args.no_postgres:
            from tests.pgcluster import PgCluster, PostgresUnavailable

            try:
                cluster = stack.enter_context(PgCluster())
                counter = iter(range(1_000_000))
                factory = lambda: _new_database(cluster, next(counter))  # noqa: E731
            except PostgresUnavailable as exc:
                print(f"Postgres unavailable ({exc}); running on DuckDB only")
        outcomes = chaos(args.kill_points, factory, args.seed, per_delivery=args.per_delivery)
    print()
    print(summary_table(outcomes))
    return 0 if all(o.ok for o in outcomes) else 1


def _new_database(cluster, n: int) -> str:
    import psycopg

    name = f"chaos_{n}"
    with psycopg.connect(cluster.dsn, autocommit=True) as con:
        con.execute(f"create database {name}")
    return cluster.dsn_for(name)


if __name__ == "__main__":
    sys.exit(main())
