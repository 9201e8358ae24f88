"""Property: after any sequence of incremental dbt builds, the marts equal a --full-refresh over the same raw
rows — on DuckDB and on Postgres — and both engines equal each other and DESIGN.md's definitions
(tests/reference_marts.py).

Seeded random event streams, each landed in random batches: duplicate deliveries (same batch and later
batches), conflicting duplicates, late events of any lateness (hours, days), bursts of events spaced around
the 30-minute boundary (1799 s, exactly 1800 s, 1800.000001 s, 1801 s) so that late events extend, bridge and
move sessions across midnight, and now and then an empty batch.

A hand-built stream (narrow_paths_stream) aims at the narrowed incremental sessionisation, which re-sessionises
only the old sessions within the gap of a new event: late events in the middle of a long history that bridge
two old sessions, extend one at either end, land exactly 1800 s (joins) or 1800.000001 s (does not) from an old
session, several new events of one user in different clusters of one batch, a chain of new events that bridges
two old sessions only together, and new events at the same timestamp as old ones with keys sorting before and
after them. Besides the marts, int_sessionised_events itself (is_session_start, session_start,
previous_land_seq per event) must equal the full refresh and the definitions after every batch.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

try:
    from tests.dbt_helpers import DuckDBRawWarehouse, Event, PostgresRawWarehouse, dbt_build
    from tests.reference_marts import (
        distinct_events,
        reference_marts,
        reference_sessionised_events,
        reference_sessions,
    )
except ImportError:  # rootdir-less invocation
    from dbt_helpers import DuckDBRawWarehouse, Event, PostgresRawWarehouse, dbt_build  # type: ignore[no-redef]
    from reference_marts import (  # type: ignore[no-redef]
        distinct_events,
        reference_marts,
        reference_sessionised_events,
        reference_sessions,
    )

# Chosen (from the first few) so that together they cover every case test_random_streams_exercise_the_edge_cases
# lists, including the rare one: a late event just before midnight makes the next day lose a session start
# while nothing else new falls on that day.
SEEDS = [5, 8]
BATCHES = 4
EVENT_TYPES = ["login", "view_page", "add_to_cart", "purchase", "signup", "logout"]
# gaps between a user's consecutive events in a burst, in seconds
GAPS = [1, 60, 900, 1799, 1800, 1800, 1800.000001, 1801, 1801, 2400, 3600]

NARROW = "narrow paths"  # the hand-built stream, next to the seeds

_duckdb_results: dict[int | str, dict] = {}


def random_stream(seed: int) -> list[list[Event]]:
    """Deliveries in landing order, cut into BATCHES batches: a big first batch (the history), then smaller
    ones that carry late events, so that many dates are untouched by a later batch."""
    rng = random.Random(seed)
    events: list[Event] = []
    serial = 0
    for user_id in rng.sample(range(1, 10**6), 6):
        for day in rng.sample(range(7), rng.randint(1, 3)):
            # bursts straddle midnight: start between 22:30 and 01:30
            t = datetime(2024, 3, 1, 22, 30) + timedelta(days=day, seconds=rng.randrange(0, 3 * 3600))
            for _ in range(rng.randint(2, 8)):
                serial += 1
                event_type = rng.choice(EVENT_TYPES)
                value = None
                if event_type == "purchase" and rng.random() < 0.85:
                    value = Decimal(rng.randrange(0, 100_000)) / 100
                events.append(Event(f"ev-{serial}", user_id, t, event_type, value))
                t += timedelta(seconds=rng.choice(GAPS))
    deliveries = list(events)
    rng.shuffle(deliveries)  # any event may arrive in any batch: lateness of minutes to days
    # duplicate deliveries, some conflicting (same key, another value: the first landed must win)
    for event in rng.sample(events, len(events) // 5):
        if event.event_type == "purchase" and rng.random() < 0.5:
            event = Event(event.event_id, event.user_id, event.event_ts, event.event_type, Decimal("1234.56"))
        deliveries.insert(rng.randrange(len(deliveries) + 1), event)
    first = int(len(deliveries) * rng.uniform(0.5, 0.8))
    cuts = sorted(rng.randrange(first, len(deliveries) + 1) for _ in range(BATCHES - 2))
    return [deliveries[a:b] for a, b in zip([0, first, *cuts], [first, *cuts, len(deliveries)])]


def _at(day: int, clock: str) -> datetime:
    """2024-03-10 + day at HH:MM[:SS[.ffffff]]."""
    parts = [float(p) for p in clock.split(":")]
    hours, minutes, seconds = (parts + [0.0, 0.0])[:3]
    return datetime(2024, 3, 10) + timedelta(days=day, hours=hours, minutes=minutes, seconds=seconds)


def _same_instant_pair(user_id: int, ts: datetime, *, new_first: bool) -> tuple[Event, Event]:
    """An old and a new event of one user at the same instant whose keys sort with the new one first (or
    last): the order within a timestamp is the idempotency key's."""
    old = Event(f"same-{user_id}-old", user_id, ts, "view_page")
    for n in range(1000):
        new = Event(f"same-{user_id}-new-{n}", user_id, ts, "login")
        if (new.key < old.key) == new_first:
            return old, new
    raise AssertionError("no event id found")


def narrow_paths_stream() -> list[list[Event]]:
    """History first, then batches of late events placed around the old sessions (see the module docstring)."""
    history: list[Event] = []
    late: list[list[Event]] = [[], [], []]

    def old(user_id: int, day: int, *clocks: str, kind: str = "view_page") -> None:
        for clock in clocks:
            history.append(Event(f"h-{user_id}-{day}-{clock}", user_id, _at(day, clock), kind))

    def new(batch: int, user_id: int, day: int, clock: str, kind: str = "view_page", value=None) -> None:
        late[batch].append(Event(f"n{batch}-{user_id}-{day}-{clock}", user_id, _at(day, clock), kind, value))

    # 101: a long history; a late purchase in its middle bridges two sessions 50 minutes apart
    for day in range(-6, 7):
        old(101, day, "09:00", "09:10")
    old(101, 0, "10:00", "10:20", "11:10", "11:30")
    new(0, 101, 0, "10:45", "purchase", Decimal("12.50"))
    # 102: extended at the start (batch 2: 20 min before), then at the end (batch 3: 25 min after)
    old(102, 0, "12:00", "12:30")
    old(102, 0, "20:00")
    new(0, 102, 0, "11:40")
    new(1, 102, 0, "12:55", "purchase", Decimal("3.00"))
    # 103: exactly 1800 s after a session's end joins it; the next session starts 1800.000001 s after that
    # new event and stays apart. Later, exactly 1800 s before a session's start joins it (start moves).
    old(103, 0, "08:00", "08:10", "09:10:00.000001", "09:15")
    new(0, 103, 0, "08:40")
    old(103, 1, "08:00")
    new(1, 103, 1, "07:30")
    old(103, 2, "08:00")
    new(1, 103, 2, "07:29:59.999999")  # 1800.000001 s before: a session of its own
    # 104: several new events of one user in one batch, in different clusters
    old(104, 0, "06:00", "14:00", "22:00")
    old(104, 1, "06:00")
    for clock in ("06:20", "13:45", "18:00"):
        new(0, 104, 0, clock)
    new(0, 104, 1, "05:35")
    # 106: a chain of three new events that bridges two old sessions only together (29 min steps)
    old(106, 0, "10:00", "11:56")
    for clock in ("10:29", "10:58", "11:27"):
        new(1, 106, 0, clock)
    # 107: late events around midnight: the session start moves back a day, then merges with the evening
    old(107, 1, "00:10", "00:20")
    old(107, 0, "23:00")
    new(0, 107, 0, "23:50")
    new(2, 107, 0, "23:25", "purchase", None)
    # 108/109: new events at the same instant as an old session's first event, keys sorting before / after
    for user_id, new_first in ((108, True), (109, False)):
        old(user_id, 0, "15:00", "15:10")
        first, second = _same_instant_pair(user_id, _at(0, "15:00"), new_first=new_first)
        history.append(first)
        late[0].append(second)
    # 110: an untouched user (nothing new ever), and a duplicate delivery of an old event in a late batch
    old(110, 0, "10:00", "10:30")
    late[2].append(history[-1])
    return [history, *late]


def stream(seed: int | str) -> list[list[Event]]:
    return narrow_paths_stream() if seed == NARROW else random_stream(seed)


def incremental_then_full_refresh(warehouse, target: str, duckdb_path, pg_dsn, batches) -> dict:
    warehouse.create_raw()
    landed: list[Event] = []
    for land_seq, batch in enumerate(batches, start=1):
        warehouse.land(batch, land_seq=land_seq)
        landed += batch
        outcome = dbt_build(
            target, duckdb_path=duckdb_path, pg_dsn=pg_dsn, exclude="resource_type:unit_test",
            # as `evident build` runs it: data tests check what this batch changed (the full refresh checks all)
            check_since_land_seq=land_seq - 1,
        )
        assert outcome.success, f"batch {land_seq}: {outcome.summary()}"
        # after every batch, not only the last: the marts equal the definitions over what has landed, and so
        # does every event's session (the narrowed sessionisation rewrote only part of it)
        assert warehouse.marts() == reference_marts(landed), f"after batch {land_seq}"
        assert warehouse.sessionised_events() == reference_sessionised_events(batches[:land_seq]), (
            f"int_sessionised_events after batch {land_seq}"
        )
    incremental = warehouse.marts(with_watermark=True), warehouse.sessionised_events()
    full = dbt_build(
        target, duckdb_path=duckdb_path, pg_dsn=pg_dsn, full_refresh=True, exclude="resource_type:unit_test"
    )
    assert full.success, full.summary()
    return {"incremental": incremental,
            "full_refresh": (warehouse.marts(with_watermark=True), warehouse.sessionised_events())}


def duckdb_result(seed: int | str, tmp_path) -> dict:
    if seed not in _duckdb_results:
        path = tmp_path / "duckdb.duckdb"
        _duckdb_results[seed] = incremental_then_full_refresh(
            DuckDBRawWarehouse(path), "duckdb", path, None, stream(seed)
        )
    return _duckdb_results[seed]


def stream_features(batches: list[list[Event]]) -> set[str]:
    """Which hard cases a stream contains, judged from the definitions (reference_marts)."""
    features: set[str] = set()
    landed: list[Event] = []
    for batch in batches:
        keys = [e.key for e in batch]
        if len(keys) > len(set(keys)):
            features.add("duplicate in one batch")
        old = distinct_events(landed)
        old_keys = {e.key for e in old}
        if any(k in old_keys for k in keys):
            features.add("duplicate in a later batch")
        if old and any(e.event_ts < max(o.event_ts for o in old) for e in batch):
            features.add("late event")
        new = [e for e in distinct_events(landed + batch) if e.key not in old_keys]
        old_sessions, old_metrics = reference_marts(landed)
        new_sessions, new_metrics = reference_marts(landed + batch)
        old_starts = {(s[1], s[2]) for s in old_sessions}
        new_starts = {(s[1], s[2]) for s in new_sessions}
        if any(
            sum(1 for u, start in old_starts if u == s[1] and s[2] <= start <= s[3]) > 1 for s in new_sessions
        ):
            features.add("late event merges sessions")
        moved = [(start, s) for (u, start) in new_starts - old_starts for (v, s) in old_starts - new_starts if u == v]
        if any(start.date() != s.date() for start, s in moved):
            features.add("session start moves to another date")
        changed_dates = {m[0] for m in set(old_metrics) ^ set(new_metrics)}
        new_event_dates = {e.event_ts.date() for e in new}
        sessions_with_new = {
            s[2].date() for s in new_sessions
            if any(e.user_id == s[1] and s[2] <= e.event_ts <= s[3] for e in new)
        }
        if changed_dates - new_event_dates - sessions_with_new:
            features.add("a date changes with no new event and no changed session starting on it")
        landed += batch
    events = distinct_events(landed)
    by_user: dict[int, list] = {}
    for e in events:
        by_user.setdefault(e.user_id, []).append(e.event_ts)
    gaps = {
        (b - a).total_seconds() for ts in by_user.values() for a, b in zip(sorted(ts), sorted(ts)[1:])
    }
    if 1800 in gaps:
        features.add("gap of exactly 1800 s")
    if 1801 in gaps or 1800.000001 in gaps:
        features.add("gap just over 1800 s")
    if any(s[2].date() != s[3].date() for s in reference_sessions(events)):
        features.add("session across midnight")
    return features


def test_random_streams_exercise_the_edge_cases():
    covered = set().union(*(stream_features(random_stream(seed)) for seed in SEEDS))
    assert covered == {
        "duplicate in one batch", "duplicate in a later batch", "late event", "late event merges sessions",
        "session start moves to another date", "a date changes with no new event and no changed session starting on it",
        "gap of exactly 1800 s", "gap just over 1800 s", "session across midnight",
    }


def test_the_narrow_paths_stream_holds_its_cases():
    """The hand-built stream does what its comments say, judged from the definitions alone."""
    batches = narrow_paths_stream()
    before = {s[1:3] for s in reference_marts(batches[0])[0]}
    after = reference_marts([e for b in batches[:2] for e in b])[0]
    starts = {(s[1], s[2]) for s in after}
    assert (101, _at(0, "10:00")) in starts and (101, _at(0, "11:10")) not in starts  # bridged
    assert (102, _at(0, "11:40")) in starts and (102, _at(0, "12:00")) not in starts  # extended at the start
    assert (103, _at(0, "08:00")) in starts and (103, _at(0, "09:10:00.000001")) in starts  # 1800 s / 1800.000001 s
    assert (104, _at(0, "18:00")) in starts and (104, _at(1, "05:35")) in starts  # new clusters of one user
    assert (108, _at(0, "15:00")) in before and (108, _at(0, "15:00")) in starts  # same instant: start stays
    rows = {r[0]: r for r in reference_sessionised_events(batches[:2])}
    old_108, new_108 = _same_instant_pair(108, _at(0, "15:00"), new_first=True)
    assert rows[old_108.key][3] is False and rows[new_108.key][3] is True  # the new key now starts it
    final = {(s[1], s[2]) for s in reference_marts([e for b in batches for e in b])[0]}
    assert (103, _at(1, "07:30")) in final and (103, _at(2, "07:29:59.999999")) in final
    assert (106, _at(0, "10:00")) in final and (106, _at(0, "11:56")) not in final  # chain bridges
    assert (107, _at(0, "23:00")) in final and (107, _at(1, "00:10")) not in final  # across midnight


@pytest.mark.parametrize("seed", [*SEEDS, NARROW])
def test_duckdb_incremental_builds_equal_full_refresh_and_reference(seed, tmp_path):
    result = duckdb_result(seed, tmp_path)
    assert result["incremental"] == result["full_refresh"]
    (sessions, metrics), events = result["full_refresh"]
    assert ([s[:7] for s in sessions], [m[:3] for m in metrics]) == reference_marts(
        [e for b in stream(seed) for e in b]
    )
    assert events == reference_sessionised_events(stream(seed))


@pytest.mark.postgres
@pytest.mark.parametrize("seed", [*SEEDS, NARROW])
def test_postgres_incremental_builds_equal_full_refresh_reference_and_duckdb(seed, tmp_path, fresh_pg_dsn):
    result = incremental_then_full_refresh(
        PostgresRawWarehouse(fresh_pg_dsn), "postgres", tmp_path / "unused.duckdb", fresh_pg_dsn,
        stream(seed),
    )
    assert result["incremental"] == result["full_refresh"]
    # the engines agree row for row, high-water marks included
    assert result == duckdb_result(seed, tmp_path)
