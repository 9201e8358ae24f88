{#-
  Grain: one row per event (idempotency key), with the session it belongs to.

  Sessionisation (DESIGN.md): a user's events ordered by event_ts (then idempotency_key); a new session starts
  at the user's first event or when the gap since the user's previous event is more than
  evident_session_gap_seconds (1800 s; exactly 1800 s is still the same session). session_start is the first
  event_ts of the session. previous_land_seq is the land_seq of the previous event of the same session (null at
  a session start): fct_daily_metrics finds the old session starts a new event may have taken over with it.

  Incremental: landing only adds events, and adding an event only ever shortens gaps, so sessions only extend
  and merge. An old session changes exactly when a new event (landed after the high-water mark, max land_seq
  here) lies within the gap of it — then one of its events lies within the gap of the new event (its first or
  last event, or the two around the new event, whose own gap is at most 1800 s). So an incremental run reads
  only:
    - the new events;
    - the old events within the gap of a new event (an index range per new event on Postgres), to find the
      sessions they belong to (the affected sessions);
    - every event of the affected sessions;
  and sessionises that set alone. That is exact: an event of the set whose true previous event lies outside
  the set is more than the gap away from it (else that event's session would be affected), so it starts a
  session either way and has no previous_land_seq; every other event's previous event is in the set, and so
  is its whole session. Each event of the set is replaced by its new row (delete+insert by event; see
  macros/incremental_replace.sql); nothing else is read or written. A replay (var evident_since_land_seq below
  the mark) takes rows landed after it from staging again, never from here.
-#}
{{
    config(
        incremental_strategy='replace_where',
        replaces="existing.user_id = replacement.user_id
            and existing.event_ts = replacement.event_ts
            and existing.idempotency_key = replacement.idempotency_key",
        on_schema_change='fail',
        post_hook="{{ evident.analyze_if_without_statistics() }}",
        indexes=evident.index_config([
            {'columns': ['user_id', 'event_ts']},
            {'columns': ['user_id', 'session_start']},
            {'columns': ['land_seq']},
            {'columns': ['previous_land_seq']},
            {'columns': ['event_date']},
        ]),
    )
}}

{%- set gap_seconds = var('evident_session_gap_seconds') | int %}
{%- set gap_microseconds = gap_seconds * 1000000 %}
{%- if is_incremental() %}
{%- set since_land_seq = evident.land_seq_watermark('land_seq') %}
{%- endif %}

with

{% if is_incremental() %}
new_events as (

    select * from {{ ref('stg_app_events') }}
    where land_seq > {{ since_land_seq }}

),

-- the sessions (as they are) with an event within the gap of a new event: the only ones that can change.
-- `this` is read in place twice rather than through a shared CTE, which Postgres would materialise whole;
-- each read is a lateral subquery, which Postgres runs as index probes per new event and per affected session
-- (evident.per_row_probe) instead of hash joins over all of `this`.
affected_sessions as (

    select distinct
        nearby.user_id,
        nearby.session_start

    from new_events
    cross join lateral (
        select
            old_events.user_id,
            old_events.session_start
        from {{ this }} as old_events
        where
            old_events.user_id = new_events.user_id
            and old_events.event_ts >= new_events.event_ts - interval '{{ gap_seconds }} seconds'
            and old_events.event_ts <= new_events.event_ts + interval '{{ gap_seconds }} seconds'
            {% if evident.is_replay() %}
            and old_events.land_seq <= {{ since_land_seq }}
            {% endif %}
        {{ evident.per_row_probe() }}
    ) as nearby

),

events as (

    select
        new_events.idempotency_key,
        new_events.user_id,
        new_events.event_ts,
        new_events.event_date,
        new_events.event_type,
        new_events.event_value,
        new_events.batch_id,
        new_events.land_seq

    from new_events

    union all

    select
        old_events.idempotency_key,
        old_events.user_id,
        old_events.event_ts,
        old_events.event_date,
        old_events.event_type,
        old_events.event_value,
        old_events.batch_id,
        old_events.land_seq

    from affected_sessions
    cross join lateral (
        select *
        from {{ this }} as session_events
        where
            session_events.user_id = affected_sessions.user_id
            and session_events.session_start = affected_sessions.session_start
            {% if evident.is_replay() %}
            -- a replay takes the rows landed after its land_seq from staging again
            and session_events.land_seq <= {{ since_land_seq }}
            {% endif %}
        {{ evident.per_row_probe() }}
    ) as old_events

),
{% else %}
events as (

    select * from {{ ref('stg_app_events') }}

),
{% endif %}

-- Defensive: each delivery of an event is one raw row already (idempotency_key is raw's primary key);
-- if it ever were not, the first landed delivery counts and the others do not.
deliveries_ranked as (

    select
        *,
        row_number() over (
            partition by user_id, idempotency_key
            order by land_seq, batch_id
        ) as delivery_rank

    from events

),

deduplicated as (

    select * from deliveries_ranked
    where delivery_rank = 1

),

with_previous_event as (

    select
        *,
        lag(event_ts) over (
            partition by user_id
            order by event_ts, idempotency_key
        ) as previous_event_ts,
        lag(land_seq) over (
            partition by user_id
            order by event_ts, idempotency_key
        ) as previous_event_land_seq

    from deduplicated

),

session_starts_flagged as (

    select
        *,
        (
            previous_event_ts is null
            or {{ evident.microseconds_between('previous_event_ts', 'event_ts') }} > {{ gap_microseconds }}
        ) as is_session_start

    from with_previous_event

),

sessions_assigned as (

    select
        *,
        -- session starts only increase along the user's events, so the latest start so far is this event's
        max(case when is_session_start then event_ts end) over (
            partition by user_id
            order by event_ts, idempotency_key
            rows between unbounded preceding and current row
        ) as session_start,
        case when not is_session_start then previous_event_land_seq end as previous_land_seq

    from session_starts_flagged

),

final as (

    select
        idempotency_key,
        user_id,
        event_ts,
        event_date,
        event_type,
        event_value,
        is_session_start,
        session_start,
        previous_land_seq,
        batch_id,
        land_seq

    from sessions_assigned

)

select * from final
{{ evident.physical_order('event_ts') }}
