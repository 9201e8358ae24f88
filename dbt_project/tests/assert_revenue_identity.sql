-- Revenue adds up: the revenue of all sessions equals the revenue of all dates (each date's own revenue is
-- checked against staging by assert_daily_events_match_staging). Whole tables on every build: a sum over
-- fct_sessions and over fct_daily_metrics' revenue rows. It is the one check across the two marts, and a
-- total cannot be split into what a build changed: a session's revenue falls on the dates of its events.
with

sessions_total as (

    select coalesce(sum(revenue), 0) as revenue
    from {{ ref('fct_sessions') }}

),

dates_total as (

    select coalesce(sum(metric_value), 0) as revenue
    from {{ ref('fct_daily_metrics') }}
    where metric_name = 'revenue'

)

select
    sessions_total.revenue as sessions_revenue,
    dates_total.revenue as dates_revenue

from sessions_total
cross join dates_total
where sessions_total.revenue <> dates_total.revenue
