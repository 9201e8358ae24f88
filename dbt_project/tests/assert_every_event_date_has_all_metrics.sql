-- Every UTC date with an event has exactly the eight metrics, and no other date has any.
-- With a check mark (EVIDENT_CHECK_SINCE_LAND_SEQ; 0 = all dates), the dates a build can have changed:
-- each date with a staged event landed after the mark has exactly the eight metrics, and each date whose
-- metrics say they hold such an event (last_land_seq, the newest land_seq among the date's events, above the
-- mark) has one — so a date with metrics but no events fails too, and only the new events are read from
-- staging (raw.app_events' land_seq index), never a date's whole history.
with

event_dates as (

    select distinct event_date as metric_date
    from {{ ref('stg_app_events') }}
    where {{ evident.in_check_window('land_seq') }}

),

metric_counts as (

    select
        metric_date,
        count(*) as metrics
    from {{ ref('fct_daily_metrics') }}
    where {{ evident.in_check_window('last_land_seq') }}
        or metric_date in (select event_dates.metric_date from event_dates)
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
