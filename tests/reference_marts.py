"""The marts computed in plain Python straight from DESIGN.md, independent of the SQL.

    sessions, metrics = reference_marts(deliveries)

`deliveries` are events in landing order (an event may be delivered several times; the first delivery of an
idempotency key is the one that counts, like raw.app_events). Results use the shapes of
tests/dbt_helpers.normalise_session / normalise_metric, sorted, so they compare with `==` to what dbt built.

Definitions (DESIGN.md, "Definitions the marts must meet exactly"):
- event date = UTC date of event_ts; duplicate deliveries count once;
- a user's events ordered by event_ts; a new session starts at the user's first event or when the gap since
  the user's previous event is more than 30 minutes (1800 s);
- session: session_id (md5 of "<user_id>|<session_start YYYY-MM-DDTHH:MM:SS.ffffffZ>", the project's
  deterministic choice), user_id, session_start, session_end, event_count, has_purchase, revenue (sum of value
  over purchase events, 0 when none);
- daily metrics per date with any event: active_users, events, signups, purchases, revenue, sessions
  (starting that day), converting_sessions (of those, with a purchase), session_conversion_rate
  (converting / sessions rounded to 6 places, half away from zero; 0 when none).
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

SESSION_GAP = timedelta(seconds=1800)
METRIC_NAMES = (
    "active_users", "events", "signups", "purchases", "revenue", "sessions", "converting_sessions",
    "session_conversion_rate",
)
CENT = Decimal("0.01")
MICRO = Decimal("0.000001")


def _key(event) -> str:
    text = "\x1f".join(
        (str(event.user_id), event.event_ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), event.event_type, event.event_id)
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def distinct_events(deliveries: Iterable) -> list:
    """One event per idempotency key: the first delivery wins."""
    first: dict[str, object] = {}
    for event in deliveries:
        first.setdefault(_key(event), event)
    return list(first.values())


def session_id(user_id: int, session_start) -> str:
    text = f"{user_id}|{session_start.strftime('%Y-%m-%dT%H:%M:%S.%f')}Z"
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _value(event) -> Decimal:
    return Decimal(0) if event.value is None else Decimal(event.value).quantize(CENT)


def reference_sessions(events: list) -> list[tuple]:
    by_user: dict[int, list] = defaultdict(list)
    for event in events:
        by_user[event.user_id].append(event)
    sessions = []
    for user_id, user_events in by_user.items():
        user_events.sort(key=lambda e: e.event_ts)
        current: list = []
        for event in user_events:
            if current and event.event_ts - current[-1].event_ts > SESSION_GAP:
                sessions.append((user_id, current))
                current = []
            current.append(event)
        sessions.append((user_id, current))
    rows = []
    for user_id, session_events in sessions:
        start, end = session_events[0].event_ts, session_events[-1].event_ts
        purchases = [e for e in session_events if e.event_type == "purchase"]
        revenue = sum((_value(e) for e in purchases), Decimal(0)).quantize(CENT)
        rows.append(
            (session_id(user_id, start), user_id, start, end, len(session_events), bool(purchases), revenue)
        )
    return sorted(rows)


def reference_daily_metrics(events: list, sessions: list[tuple]) -> list[tuple]:
    by_date: dict = defaultdict(list)
    for event in events:
        by_date[event.event_ts.date()].append(event)
    sessions_by_date: dict = defaultdict(list)
    for row in sessions:
        sessions_by_date[row[2].date()].append(row)
    rows = []
    for day, day_events in by_date.items():
        day_sessions = sessions_by_date.get(day, [])
        converting = sum(1 for s in day_sessions if s[5])
        rate = (
            (Decimal(converting) / Decimal(len(day_sessions))).quantize(MICRO, rounding=ROUND_HALF_UP)
            if day_sessions
            else Decimal(0)
        )
        values = {
            "active_users": len({e.user_id for e in day_events}),
            "events": len(day_events),
            "signups": sum(1 for e in day_events if e.event_type == "signup"),
            "purchases": sum(1 for e in day_events if e.event_type == "purchase"),
            "revenue": sum((_value(e) for e in day_events if e.event_type == "purchase"), Decimal(0)),
            "sessions": len(day_sessions),
            "converting_sessions": converting,
            "session_conversion_rate": rate,
        }
        for name in METRIC_NAMES:
            rows.append((day, name, Decimal(values[name]).quantize(MICRO)))
    # sessions start on a date with an event (their first event), so no session-only dates exist
    assert set(sessions_by_date) <= set(by_date)
    return sorted(rows)


def reference_sessionised_events(batches: Iterable[Iterable]) -> list[tuple]:
    """int_sessionised_events from the definitions: per event (first delivery of its key; land_seq = the
    1-based number of the batch that delivered it first) the tuple
    (idempotency_key, user_id, event_ts, is_session_start, session_start, previous_land_seq, land_seq),
    sorted. previous_land_seq is the land_seq of the previous event of the same session (None at a start).
    A user's events are ordered by event_ts, then idempotency key."""
    land_seq: dict[str, int] = {}
    events: list = []
    for number, batch in enumerate(batches, start=1):
        for event in batch:
            if _key(event) not in land_seq:
                land_seq[_key(event)] = number
                events.append(event)
    by_user: dict[int, list] = defaultdict(list)
    for event in events:
        by_user[event.user_id].append(event)
    rows = []
    for user_id, user_events in by_user.items():
        user_events.sort(key=lambda e: (e.event_ts, _key(e)))
        previous = None
        start = None
        for event in user_events:
            is_start = previous is None or event.event_ts - previous.event_ts > SESSION_GAP
            if is_start:
                start = event.event_ts
            previous_land_seq = None if is_start else land_seq[_key(previous)]
            rows.append((_key(event), user_id, event.event_ts, is_start, start, previous_land_seq,
                         land_seq[_key(event)]))
            previous = event
    return sorted(rows)


def reference_marts(deliveries: Iterable) -> tuple[list[tuple], list[tuple]]:
    events = distinct_events(deliveries)
    sessions = reference_sessions(events)
    return sessions, reference_daily_metrics(events, sessions)
