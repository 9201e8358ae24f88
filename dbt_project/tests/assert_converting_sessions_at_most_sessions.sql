-- Per date: 0 <= converting_sessions <= sessions, and the conversion rate lies in [0, 1].
with

pivoted as (

    select
        metric_date,
        sum(case when metric_name = 'sessions' then metric_value end) as sessions,
        sum(case when metric_name = 'converting_sessions' then metric_value end) as converting_sessions,
        sum(case when metric_name = 'session_conversion_rate' then metric_value end) as session_conversion_rate

    from {{ ref('fct_daily_metrics') }}
    group by metric_date

)

select *
from pivoted
where converting_sessions < 0
    or converting_sessions > sessions
    or session_conversion_rate < 0
    or session_conversion_rate > 1
