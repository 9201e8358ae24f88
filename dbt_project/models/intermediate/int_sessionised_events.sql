{#-
  Grain: one row per event (idempotency key), with the session it belongs to.

  Sessionisation (DESIGN.md): a user's events ordered by event_ts; a new session starts at the user's first
  event or when the gap since the user's previous event is more than evident_session_gap_seconds (1800 s;
  exactly 1800 s is still the same session). session_start is the first event_ts of the session.

  Incremental: a late event can extend, merge (or, were rows ever removed, split) sessions of its user, so an
  incremental run recomputes the whole history of every user with a row landed after the high-water mark
  (max land_seq already here) and replaces all of that user's rows (delete+insert on user_id). Work is
  proportional to the touched users' history; other users are not read.
-#}
{{
    config(
        unique_key='user_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=evident.index_config([
            {'columns': ['user_id', 'event_ts']},
            {'columns': ['land_seq']},
            {'columns': ['previous_land_seq']},
            {'columns': ['event_date']},
        ]),
    )
}}

{%- set gap_microseconds = (var('evident_session_gap_seconds') | int) * 1000000 %}

with

events as (

    select * from {{ ref('stg_app_events') }}

    {% if is_incremental() %}
    where
        user_id in (
            select new_events.user_id
            from {{ ref('stg_app_events') }} as new_events
            where new_events.land_seq > {{ evident.land_seq_watermark('land_seq') }}
        )
    {% endif %}

),

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
        ) as previous_land_seq

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
        ) as session_start

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
