-- Revenue adds up: per date, the `revenue` metric equals the staged purchase values of that day (dates with
-- events landed after EVIDENT_CHECK_SINCE_LAND_SEQ; 0 = all); in total, the revenue of all sessions
-- equals the revenue of all dates.
with

checked_dates as (

    select distinct event_date as metric_date
    from {{ ref('stg_app_events') }}
    where {{ evident.in_check_window('land_seq') }}

),

staged as (

    select
        event_date as metric_date,
        coalesce(sum(case when event_type = 'purchase' then event_value end), 0) as revenue

    from {{ ref('stg_app_events') }}
    where event_date in (select checked_dates.metric_date from checked_dates)
    group by event_date

),

reported as (

    select
        metric_date,
        sum(case when metric_name = 'revenue' then metric_value end) as revenue

    from {{ ref('fct_daily_metrics') }}
    group by metric_date

),

per_date_mismatches as (

    select
        'per date' as check_name,
        staged.metric_date,
        staged.revenue as expected,
        reported.revenue as actual

    from staged
    left join reported
        on staged.metric_date = reported.metric_date
    where reported.revenue is null
        or reported.revenue <> staged.revenue

),

totals as (

    select
        'sessions total' as check_name,
        cast(null as date) as metric_date,
        (select coalesce(sum(revenue), 0) from {{ ref('fct_sessions') }}) as expected,
        (select coalesce(sum(revenue), 0) from reported) as actual

)

select * from per_date_mismatches

union all

select * from totals
where expected <> actual
