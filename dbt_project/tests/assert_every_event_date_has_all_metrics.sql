-- Every UTC date with an event has exactly the eight metrics, and no other date has any.
-- Checks the dates with events landed after EVIDENT_CHECK_SINCE_LAND_SEQ (0 = all dates).
with

checked_dates as (

    select event_date as metric_date
    from {{ ref('stg_app_events') }}
    where {{ evident.in_check_window('land_seq') }}

    union

    select metric_date
    from {{ ref('fct_daily_metrics') }}
    where {{ evident.in_check_window('last_land_seq') }}

),

event_dates as (

    select distinct event_date as metric_date
    from {{ ref('stg_app_events') }}
    where event_date in (select checked_dates.metric_date from checked_dates)

),

metric_counts as (

    select
        metric_date,
        count(*) as metrics
    from {{ ref('fct_daily_metrics') }}
    where metric_date in (select checked_dates.metric_date from checked_dates)
    group by metric_date

)

select
    metric_counts.metrics,
    coalesce(event_dates.metric_date, metric_counts.metric_date) as metric_date

from event_dates
full outer join metric_counts
    on event_dates.metric_date = metric_counts.metric_date
where event_dates.metric_date is null
    or metric_counts.metrics is null
    or metric_counts.metrics <> 8
