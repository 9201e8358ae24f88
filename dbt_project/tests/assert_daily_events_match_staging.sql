-- Per date, the metrics that count events equal staging's: `events` the number of staged events (one row per
-- idempotency key) that day, `active_users` the distinct users, `revenue` the staged purchase values (0 when
-- none). Checks the dates with events landed after EVIDENT_CHECK_SINCE_LAND_SEQ (0 = all dates): every staged
-- event of those dates is read, once for the three measures (assert_revenue_identity checks the totals).
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
        count(distinct user_id) as active_users,
        coalesce(sum(case when event_type = 'purchase' then event_value end), 0) as revenue

    from {{ ref('stg_app_events') }}
    -- the event_ts range first: two comparisons per row rule out most of the history before event_date (an
    -- expression of staging's view) is computed, and an index on event_ts could serve it
    where event_ts >= (select cast(min(checked_dates.metric_date) as timestamp) from checked_dates)
        and event_ts < (select cast(max(checked_dates.metric_date) + 1 as timestamp) from checked_dates)
        and event_date in (select checked_dates.metric_date from checked_dates)
    group by event_date

),

reported as (

    select
        metric_date,
        sum(case when metric_name = 'events' then metric_value end) as events,
        sum(case when metric_name = 'active_users' then metric_value end) as active_users,
        sum(case when metric_name = 'revenue' then metric_value end) as revenue

    from {{ ref('fct_daily_metrics') }}
    where metric_date in (select checked_dates.metric_date from checked_dates)
    group by metric_date

)

select
    staged.metric_date,
    staged.events as staged_events,
    reported.events as reported_events,
    staged.active_users as staged_active_users,
    reported.active_users as reported_active_users,
    staged.revenue as staged_revenue,
    reported.revenue as reported_revenue

from staged
left join reported
    on staged.metric_date = reported.metric_date
where reported.events is null
    or reported.events <> staged.events
    or reported.active_users <> staged.active_users
    or reported.revenue is null
    or reported.revenue <> staged.revenue
