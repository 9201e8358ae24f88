{#-
  Grain: one row per (metric_date, metric_name). Every UTC date with at least one event has all eight
  metrics; dates without any event have no rows (no date spine: nothing happened, nothing is claimed).

    active_users         distinct users with an event that day
    events               events that day (each event once, however often it was delivered)
    signups, purchases   events of that type that day
    revenue              sum of the values of that day's purchase events (0 when none)
    sessions             sessions starting that day
    converting_sessions  of those, sessions with a purchase
    session_conversion_rate  converting_sessions / sessions, rounded half away from zero to 6 places; 0 when
                         there are no sessions

  Incremental: only the affected dates are recomputed, from their complete data, and replace the old rows
  (delete+insert on metric_date). With "new" = events landed after the high-water mark (max last_land_seq
  here), the affected dates are:
    - the event dates of the new events;
    - the start dates of the sessions (as they are now) that contain a new event;
    - the dates of old events that now follow a new event directly within its session (previous_land_seq
      is new): an old session start that is no longer one (its session merged into, or now begins at, an
      earlier event) always does.
  Landing only ever adds events, so no other session changes.
-#}
{{
    config(
        unique_key='metric_date',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
    )
}}

{%- set metric_names = [
    'active_users', 'events', 'signups', 'purchases', 'revenue',
    'sessions', 'converting_sessions', 'session_conversion_rate',
] %}

with

{% if is_incremental() %}
{%- set since_land_seq = evident.land_seq_watermark('last_land_seq') %}
new_events as (

    select
        event_date,
        session_start
    from {{ ref('int_sessionised_events') }}
    where land_seq > {{ since_land_seq }}

),

affected_dates as (

    -- dates of the new events
    select event_date as metric_date from new_events

    union

    -- start dates of the sessions (as they are now) that contain a new event
    select cast(session_start as date) as metric_date from new_events

    union

    -- dates of old events that now directly follow a new event: the old session starts that may be gone
    select event_date as metric_date
    from {{ ref('int_sessionised_events') }}
    where previous_land_seq > {{ since_land_seq }}
        and land_seq <= {{ since_land_seq }}

),
{% endif %}

events as (

    select * from {{ ref('int_sessionised_events') }}
    {% if is_incremental() %}
    -- the range lets Postgres read just that stretch of the event_date index (its row estimate for the
    -- IN list alone is poor, and it then walks the whole index)
    where event_date >= (select min(affected_dates.metric_date) from affected_dates)
        and event_date <= (select max(affected_dates.metric_date) from affected_dates)
        and event_date in (select affected_dates.metric_date from affected_dates)
    {% endif %}

),

sessions as (

    select
        cast(session_start as date) as session_date,
        has_purchase

    from {{ ref('fct_sessions') }}
    {% if is_incremental() %}
    where session_start >= (select min(affected_dates.metric_date) from affected_dates)
        and session_start < (select max(affected_dates.metric_date) from affected_dates) + 1
        and cast(session_start as date) in (select affected_dates.metric_date from affected_dates)
    {% endif %}

),

event_metrics as (

    select
        event_date as metric_date,
        count(distinct user_id) as active_users,
        count(*) as events,
        sum(case when event_type = 'signup' then 1 else 0 end) as signups,
        sum(case when event_type = 'purchase' then 1 else 0 end) as purchases,
        coalesce(sum(case when event_type = 'purchase' then event_value end), 0) as revenue,
        max(land_seq) as last_land_seq

    from events
    group by event_date

),

session_metrics as (

    select
        session_date as metric_date,
        count(*) as sessions,
        sum(case when has_purchase then 1 else 0 end) as converting_sessions

    from sessions
    group by session_date

),

daily as (

    select
        event_metrics.metric_date,
        event_metrics.active_users,
        event_metrics.events,
        event_metrics.signups,
        event_metrics.purchases,
        event_metrics.revenue,
        coalesce(session_metrics.sessions, 0) as sessions,
        coalesce(session_metrics.converting_sessions, 0) as converting_sessions,
        {{ evident.rounded_ratio(
            'coalesce(session_metrics.converting_sessions, 0)',
            'coalesce(session_metrics.sessions, 0)',
            6,
        ) }} as session_conversion_rate,
        event_metrics.last_land_seq

    from event_metrics
    left join session_metrics
        on event_metrics.metric_date = session_metrics.metric_date

),

unpivoted as (

    {% for metric_name in metric_names %}
    select
        metric_date,
        '{{ metric_name }}' as metric_name,
        cast({{ metric_name }} as decimal(38, 6)) as metric_value,
        last_land_seq
    from daily
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

final as (

    select
        cast(metric_date as date) as metric_date,
        cast(metric_name as varchar) as metric_name,
        cast(metric_value as decimal(38, 6)) as metric_value,
        cast(last_land_seq as bigint) as last_land_seq

    from unpivoted

)

select * from final
