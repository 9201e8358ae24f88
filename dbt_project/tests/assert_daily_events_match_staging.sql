-- The `events` metric of each date equals the number of staged events (one row per idempotency key) that day,
-- and `active_users` the distinct users that day.
-- Checks the dates with events landed after EVIDENT_CHECK_SINCE_LAND_SEQ (0 = all dates).
with

checked_dates as (

    select distinct event_date as metric_date
    from {{ ref('stg_app_events') }}
    where {{ evident.in_check_window('land_seq') }}

),

staged as (

    select
        event_date as metric_date,
        count(*) as events,
        count(distinct user_id) as active_users

    from {{ ref('stg_app_events') }}
    where event_date in (select checked_dates.metric_date from checked_dates)
    group by event_date

),

reported as (

    select
        metric_date,
        sum(case when metric_name = 'events' then metric_value end) as events,
        sum(case when metric_name = 'active_users' then metric_value end) as active_users

    from {{ ref('fct_daily_metrics') }}
    where metric_date in (select checked_dates.metric_date from checked_dates)
    group by metric_date

)

select
    staged.metric_date,
    staged.events as staged_events,
    reported.events as reported_events,
    staged.active_users as staged_active_users,
    reported.active_users as reported_active_users

from staged
left join reported
    on staged.metric_date = reported.metric_date
where reported.events is null
    or reported.events <> staged.events
    or reported.active_users <> staged.active_users
