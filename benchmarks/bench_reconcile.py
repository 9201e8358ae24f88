"""Reconciliation benchmark: marts built from an N-event history in DuckDB and Postgres, reconciled.

    python -m benchmarks.bench_reconcile --events 10000000      # default size
    python -m benchmarks.bench_reconcile --events 200000        # a quick run

The marts are generated inside each engine with the same SQL over generate_series (nothing goes through
Python): published.fct_sessions with one session per SESSION_EVENTS events (session_id = md5, user, start, end,
event_count, has_purchase, revenue) spread over --days dates, and published.fct_daily_metrics derived from it;
the tables are created as publish creates them (on Postgres: indexed on the partition column, with statistics
on its date and the triggers that record which partitions each statement writes). With --raw, raw.app_events
gets the N events too (slow on Postgres because of the text primary key).

Measured in the same run, every figure the best of --repeat runs (warm caches on both sides):
- postgres_scan_s: per table one `select count(*), sum(<measure>)` on Postgres (the yardstick);
- first_reconcile_s: the first reconcile, which hashes every partition (nothing was hashed before) — what
  `--full` costs too (full_reconcile_s);
- reconcile_s: a reconcile of every table when nothing was written since (the steady state of scheduled
  runs), as a ratio to the sum of those scans; reconcile_fct_sessions_only_s likewise for fct_sessions alone;
- after_change_s: after the last 3 dates of fct_sessions were rewritten on both engines (as a publish of late
  data does), the reconcile that hashes just those partitions again;
- after one session row is changed in Postgres by hand (its trigger records the partition): pinpoint_s, the
  reconcile (every table) that reports that key, as a ratio to the fct_sessions scan, and pinpoint_window_s,
  the same restricted to the changed row's table and date (--table fct_sessions --date-from D --date-to D).
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import psycopg

from evident import reconcile as rc
from evident.build.manifest import published_models
from evident.engines import DuckDBEngine, PostgresEngine
from evident.pipeline.context import prepare_engine
from evident.project import find_project
from evident.publish.marts import ensure_published_table

from .common import postgres_dsn, write_result

SESSION_EVENTS = 5  # average events per session (event_count = 1 + i % 9)


def _ts_sql(engine: str, days: int, rows: int) -> str:
    """timestamp '2026-01-01' + day + a pseudo-random microsecond of the day, identical on both engines.

    Rows are generated in date order (day = i * days / rows), as marts published day after day are stored."""
    day = f"(i * {days}) / {rows}" if engine == "postgres" else f"(i * {days}) // {rows}"
    micros = f"{day} * 86400000000 + (i * 104729) % 86400000000"
    if engine == "postgres":
        return f"timestamp '2026-01-01' + ({micros}) * interval '1 microsecond'"
    return f"timestamp '2026-01-01' + to_microseconds({micros})"


def _sessions_sql(engine: str, sessions: int, days: int, users: int) -> str:
    return f"""insert into published.fct_sessions
        (session_id, user_id, session_start, session_end, event_count, has_purchase, revenue)
    select md5(cast(u as varchar) || '|' || cast(i as varchar)), u, ts, ts + (i % 1800) * interval '1 second',
           cast(1 + i % 9 as integer), i % 7 = 0,
           cast(case when i % 7 = 0 then cast((i * 31) % 100000 as decimal(18,0)) * 0.01 else 0 end as decimal(18,2))
    from (select i, 1 + (i * 7919) % {users} as u,
                 {_ts_sql(engine, days, sessions)} as ts
          from generate_series(cast(0 as bigint), cast({sessions - 1} as bigint)) as t(i)) g"""


_METRICS_SQL = """insert into published.fct_daily_metrics (metric_date, metric_name, metric_value)
    select d, name, v from (
        select cast(session_start as date) as d, count(*) as sessions, sum(case when has_purchase then 1 else 0 end)
               as converting, sum(revenue) as revenue, sum(event_count) as events, count(distinct user_id) as users
        from published.fct_sessions group by 1) s
    cross join lateral (values ('sessions', cast(sessions as decimal(38,6))),
                               ('converting_sessions', cast(converting as decimal(38,6))),
                               ('revenue', cast(revenue as decimal(38,6))), ('events', cast(events as decimal(38,6))),
                               ('active_users', cast(users as decimal(38,6))),
                               ('session_conversion_rate', round(cast(converting as decimal(38,6)) / sessions, 6)))
        as m(name, v)"""


def _raw_sql(engine: str, events: int, days: int, users: int) -> str:
    return f"""insert into raw.app_events (idempotency_key, event_id, user_id, event_ts, event_type, value, app_version,
        properties, payload_sha256, batch_id, land_seq, source_file, source_line, contract_id, landed_at)
    select md5('k' || cast(i as varchar)) || md5('K' || cast(i as varchar)), 'e' || cast(i as varchar),
           1 + (i * 7919) % {users}, {_ts_sql(engine, days, events)},
           case i % 6 when 0 then 'purchase' when 1 then 'login' when 2 then 'view_page' when 3 then 'add_to_cart'
                      when 4 then 'logout' else 'signup' end,
           case when i % 6 = 0 then cast(cast((i * 31) % 100000 as decimal(18,0)) * 0.01 as decimal(18,2)) end,
           case when i % 5 = 0 then null else '1.' || cast(i % 4 as varchar) || '.0' end,
           case when i % 3 = 0 then '{{"k":"v"}}' end, md5('p' || cast(i as varchar)) || md5('P' || cast(i as varchar)),
           'batch-' || cast(i / 100000 as varchar), 1, 'f.jsonl', cast(i % 100000 + 1 as integer), 'app_events@1',
           timestamp '2026-03-01'
    from generate_series(cast(0 as bigint), cast({events - 1} as bigint)) as t(i)"""


def build(engine, events: int, days: int, users: int, with_raw: bool) -> float:
    started = time.perf_counter()
    prepare_engine(engine)
    engine.execute("create schema if not exists published")
    for mart in (m for n, m in published_models(find_project()).items() if n in ("fct_sessions", "fct_daily_metrics")):
        engine.execute(f"drop table if exists published.{mart.name}")
        ensure_published_table(engine, mart)
    engine.execute(_sessions_sql(engine.name, max(1, events // SESSION_EVENTS), days, users))
    engine.execute(_METRICS_SQL)
    if with_raw:
        engine.execute("delete from raw.app_events")
        engine.execute(_raw_sql(engine.name, events, days, users))
    if engine.name == "postgres":
        engine.execute("vacuum analyze")
    else:
        engine.execute("checkpoint")
    return round(time.perf_counter() - started, 3)


def best(repeat: int, action) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return round(min(times), 3), result


def ratio(seconds: float, scan_s: float) -> float:
    """seconds in units of a scan; a scan too quick to time (a tiny BENCH_SCALE) counts as 1 ms."""
    return round(seconds / max(scan_s, 0.001), 2)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--raw", action="store_true", help="also generate and reconcile raw.app_events (N rows)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="evident-bench-reconcile-"))
    tables = ["published.fct_sessions", "published.fct_daily_metrics"] + (["raw.app_events"] if args.raw else [])
    try:
        with postgres_dsn() as dsn:
            with psycopg.connect(dsn, autocommit=True) as admin:
                for schema in ("raw", "evident", "published"):
                    admin.execute(f"drop schema if exists {schema} cascade")
            duck, pg = DuckDBEngine(work / "evident.duckdb"), PostgresEngine(dsn)
            try:
                build_s = {e.name: build(e, args.events, args.days, args.users, args.raw) for e in (duck, pg)}
                sessions = pg.fetchone("select count(*) from published.fct_sessions")[0]
                scans = {t: f"select count(*), sum({rc.table_specs()[t].measures[0]}) from {t}" for t in tables}
                pg_scans = {t: best(args.repeat, lambda: pg.fetchall(sql))[0] for t, sql in scans.items()}
                duck_scans = {t: best(args.repeat, lambda: duck.fetchall(sql))[0] for t, sql in scans.items()}
                scan_s = pg_scans["published.fct_sessions"]
                all_scans_s = round(sum(pg_scans.values()), 3)

                def run(**kwargs):
                    return rc.reconcile([duck, pg], "bench", **{"tables": tables, **kwargs})

                first_s, first = best(1, run)
                assert first.status == "matched" and first.partitions_hashed == len(first.partitions), first.render()
                reconcile_s, report = best(args.repeat, run)
                assert report.status == "matched" and report.partitions_hashed == 0, report.render()
                full_s, _ = best(args.repeat, lambda: run(full=True))
                sessions_only_s, _ = best(args.repeat, lambda: run(tables=["fct_sessions"]))
                # A publish of late data rewrites the last dates on both engines.
                last = pg.fetchone("select max(cast(session_start as date)) from published.fct_sessions")[0]
                for engine in (duck, pg):
                    engine.execute("update published.fct_sessions set session_end = session_end + interval '1 second' "
                                   "where session_start >= %s", [last - timedelta(days=2)])
                after_change_s, changed = best(1, run)
                assert changed.status == "matched" and changed.partitions_hashed == 3, changed.render()
                # One changed row on the Postgres side.
                victim, day = pg.fetchone("select session_id, cast(session_start as date) from published.fct_sessions "
                                          "where session_id = (select min(session_id) from published.fct_sessions)")
                pg.execute("update published.fct_sessions set revenue = revenue + 0.01 where session_id = %s", [victim])
                pinpoint_s, found = best(args.repeat, run)
                diffs = [(p.table, d.key, d.kind, d.columns) for p in found.partitions for d in p.diffs]
                assert diffs == [("published.fct_sessions", victim, "different", ["revenue"])], found.render()
                window_s, windowed = best(args.repeat, lambda: run(tables=["fct_sessions"], date_from=day, date_to=day))
                assert [d.key for p in windowed.partitions for d in p.diffs] == [victim]
                validate_s, _ = best(1, lambda: rc.validate_report(found))
            finally:
                duck.close()
                pg.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "events": args.events, "days": args.days, "sessions": sessions, "tables": tables,
        "targets": {"reconcile_vs_scan_max_ratio": 2.0, "pinpoint_vs_scan_max_ratio": 3.0},
        "build_s": build_s,
        "postgres_scan_s": pg_scans, "duckdb_scan_s": duck_scans,
        "first_reconcile_s": first_s, "first_reconcile_vs_scans": ratio(first_s, all_scans_s),
        "full_reconcile_s": full_s, "full_reconcile_vs_scans": ratio(full_s, all_scans_s),
        "reconcile_s": reconcile_s, "reconcile_vs_scans": ratio(reconcile_s, all_scans_s),
        "reconcile_fct_sessions_only_s": sessions_only_s,
        "reconcile_fct_sessions_vs_scan": ratio(sessions_only_s, scan_s),
        "reconcile_queries": report.queries, "reconcile_partitions": len(report.partitions),
        "after_change_s": after_change_s, "after_change_vs_scans": ratio(after_change_s, all_scans_s),
        "after_change_partitions_hashed": changed.partitions_hashed,
        "pinpoint_s": pinpoint_s, "pinpoint_vs_scan": ratio(pinpoint_s, scan_s),
        "pinpoint_rows_fetched": found.rows_fetched, "pinpoint_queries": found.queries,
        "pinpoint_window_s": window_s, "pinpoint_window_vs_scan": ratio(window_s, scan_s),
        "gx_validation_s": validate_s,
    }
    write_result("reconcile" + ("_raw" if args.raw else ""), result)
    return result


if __name__ == "__main__":
    main()
